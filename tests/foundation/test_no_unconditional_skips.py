"""No test is skipped unconditionally: a skip must sit behind a condition (``skipif``, an ``if``), or the test
is dead weight that reports as green.

An AST scan of every test file flags ``@pytest.mark.skip`` (with or without a reason), ``pytestmark`` set to a
skip mark, ``pytest.skip(...)`` as a statement of the module body, and ``pytest.skip(...)`` as the first statement
of a test function (or right after its docstring). ``xfail`` without a condition counts too: it turns a failure
into a pass.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ALWAYS = {"skip", "xfail"}  # marks that hit every run when they carry no condition


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _unconditional_mark(node: ast.AST) -> bool:
    """``pytest.mark.skip``/``skip(...)``; ``xfail`` with no positional condition and no ``condition=``."""
    name = _dotted(node)
    if name in ("pytest.mark.skip", "mark.skip"):
        return True
    if name in ("pytest.mark.xfail", "mark.xfail"):
        if not isinstance(node, ast.Call):
            return True
        return not node.args and not any(k.arg == "condition" for k in node.keywords)
    return False


def _is_skip_call(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and _dotted(stmt.value) in ("pytest.skip", "skip"))


def _first_statement(body: list[ast.stmt]) -> ast.stmt | None:
    rest = body[1:] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body
    return rest[0] if rest else None


def unconditional_skips(source: str, filename: str = "<test>") -> list[str]:
    """``["file:line what", ...]`` for every unconditional skip in one test module."""
    tree = ast.parse(source, filename)
    found = []
    for stmt in tree.body:
        if _is_skip_call(stmt):
            found.append(f"{filename}:{stmt.lineno} pytest.skip() at module level")
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets):
            marks = stmt.value.elts if isinstance(stmt.value, (ast.List, ast.Tuple)) else [stmt.value]
            found += [f"{filename}:{stmt.lineno} pytestmark = {_dotted(m)}" for m in marks if _unconditional_mark(m)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found += [f"{filename}:{d.lineno} @{_dotted(d)} on {node.name}" for d in node.decorator_list
                      if _unconditional_mark(d)]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            first = _first_statement(node.body)
            if first is not None and _is_skip_call(first):
                found.append(f"{filename}:{first.lineno} pytest.skip() first in {node.name}")
    return found


@pytest.mark.parametrize("source,hits", [
    ("import pytest\n@pytest.mark.skip\ndef test_a():\n    assert 1\n", 1),
    ("import pytest\n@pytest.mark.skip(reason='later')\ndef test_a():\n    assert 1\n", 1),
    ("import pytest\npytest.skip('off', allow_module_level=True)\n", 1),
    ("import pytest\npytestmark = [pytest.mark.slow, pytest.mark.skip('x')]\n", 1),
    ("import pytest\ndef test_a():\n    '''doc'''\n    pytest.skip('not yet')\n    assert 1\n", 1),
    ("import pytest\nclass TestA:\n    def test_a(self):\n        pytest.skip('x')\n", 1),
    ("import pytest\n@pytest.mark.xfail(reason='flaky')\ndef test_a():\n    assert 1\n", 1),
    # conditional skips pass
    ("import pytest, sys\n@pytest.mark.skipif(sys.platform == 'win32', reason='posix')\ndef test_a():\n    pass\n", 0),
    ("import pytest\ndef test_a(x):\n    if x:\n        pytest.skip('no x')\n    assert 1\n", 0),
    ("import pytest\n@pytest.mark.xfail(True, reason='known')\ndef test_a():\n    assert 1\n", 0),
    ("import pytest\npytestmark = pytest.mark.slow\n", 0),
    ("import pytest\ndef helper():\n    pytest.skip('helpers may skip for their callers')\n", 0),
])
def test_the_scan_finds_unconditional_skips(source, hits):
    assert len(unconditional_skips(source)) == hits


def test_no_test_file_skips_unconditionally():
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50
    found = [hit for f in files
             for hit in unconditional_skips(f.read_text(encoding="utf-8"), str(f.relative_to(TESTS)))]
    assert not found, "unconditional skips (use skipif with a reason, or delete the test): " + "; ".join(found)

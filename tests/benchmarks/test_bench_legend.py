"""The README's benchmark table says what each ``benchmarks/bench_*.py`` prints, read from the scripts (not run).

Every script declares ``RATIO`` (what its ``ratio=`` divides, peer over ours, ending in ``_rounds.FASTER``),
passes it to ``print_ratio`` (which prints it as ``ratio means: ...`` before ``ratio=``), warms up every side
of every ``run_rounds`` call, and its README row quotes that ``RATIO`` verbatim.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import _rounds  # benchmarks/ (tests/benchmarks/conftest.py)
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted((ROOT / "benchmarks").glob("bench_*.py"))


FASTER = "(> 1: ours faster)"  # the one direction; _rounds.FASTER must say the same


def test_rounds_helper_enforces_the_one_direction():
    assert getattr(_rounds, "FASTER", None) == FASTER


def declared_ratio(tree: ast.Module) -> str | None:
    for node in tree.body:
        if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["RATIO"]
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    return None


def calls(tree: ast.Module, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def benchmark_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(bench_\w+\.py)`", line)
        if m:
            assert m.group(1) not in rows, f"two README rows for {m.group(1)}"
            rows[m.group(1)] = line
    return rows


def test_legend_states_the_one_direction_and_rows_are_exactly_the_scripts():
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Benchmarks\n", 1)[1].split("\n## ")[0]
    legend = section.split("\n|", 1)[0]
    assert FASTER.strip("()") in legend and "ratio means:" in legend, legend
    assert sorted(benchmark_rows()) == [p.name for p in BENCHES]


@pytest.mark.parametrize("path", BENCHES, ids=[p.name for p in BENCHES])
def test_script_prints_its_declared_ratio_and_readme_quotes_it(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ratio = declared_ratio(tree)
    assert ratio is not None, f"{path.name}: no module-level RATIO = '...' saying what ratio= divides"
    assert ratio.endswith(FASTER), f"{path.name}: RATIO must be peer over ours, ending in {FASTER!r}: {ratio!r}"
    printed = calls(tree, "print_ratio")
    assert printed, f"{path.name} never calls print_ratio"
    for call in printed:
        means = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "means"),
                                                             None)
        assert getattr(means, "id", None) == "RATIO", f"{path.name}:{call.lineno}: print_ratio without RATIO"
    assert ratio in benchmark_rows()[path.name], f"README row of {path.name} does not quote its RATIO {ratio!r}"


@pytest.mark.parametrize("path", BENCHES, ids=[p.name for p in BENCHES])
def test_every_comparison_warms_up_both_sides_in_rounds(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rounds = calls(tree, "run_rounds")
    assert rounds, f"{path.name} does not use the shared rounds helper (_rounds.run_rounds)"
    for call in rounds:
        warm = next((k.value for k in call.keywords if k.arg == "warmup"), None)
        assert isinstance(warm, ast.Constant) and warm.value is True, \
            f"{path.name}:{call.lineno}: run_rounds without warmup=True"

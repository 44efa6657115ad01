"""The package's shape: floors that import only downwards (ground floor < stages < papers < orchestration < CLI),
no stage package importing another, no import cycles, finemed imports at module top, every stage kind the issue
names is registered, and the registry loads without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "finemed"
STAGE_PACKAGES = {"corpus", "tokenizer", "cpt", "distill", "merging", "evaluation", "sft"}
# the floor of each top-level name under finemed/: a module imports only its own package or lower floors, and stage
# packages (floor 1) never import each other; papers (findings over the stages' artifacts) sit above the stages
FLOORS = {"core": 0, "data": 0, "models": 0, **{p: 1 for p in STAGE_PACKAGES}, "papers": 2, "orchestrate": 3,
          "cli": 4, "__init__": 0}
KINDS = ["corpus.sample_input", "corpus.annotate", "corpus.train_classifier", "corpus.cascade", "corpus.build",
         "corpus.pii_eval", "corpus.quality_report", "tokenizer.train", "tokenizer.eval", "tokenizer.cost",
         "tokenizer.compare", "train.cpt", "train.distill", "train.cache_logits", "merge.apply", "merge.sweep",
         "eval.bpb", "eval.qa", "eval.mcq", "eval.generate", "eval.pairwise", "eval.winrates", "eval.failures",
         "models.fetch"]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, list[tuple[str, list[str], bool]]]:
    """module -> [(imported finemed module, imported names, at module top)]."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, list[tuple[str, list[str], bool]]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        edges = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("finemed"):
                target = node.module
                names = [a.name for a in node.names]
                sub = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
                edges += [(t, [], id(node) in top) for t in sub] or [(target, names, id(node) in top)]
            elif isinstance(node, ast.Import):
                edges += [(a.name, [], id(node) in top) for a in node.names if a.name.startswith("finemed")]
        graph[name] = [e for e in edges if e[0] in modules]
    return graph


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    graph = {m: sorted({t for t, _, _ in edges if not m.startswith(t + ".") and t != m})
             for m, edges in _imports().items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _stage_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGE_PACKAGES else None


def test_no_private_names_across_stage_packages():
    bad = []
    for module, edges in _imports().items():
        for target, names, _ in edges:
            owner = _stage_package(target)
            if owner and owner != _stage_package(module):
                bad += [f"{module} imports {target}.{n}" for n in names if n.startswith("_")]
                if target.rsplit(".", 1)[-1].startswith("_") and not target.endswith("__init__"):
                    bad.append(f"{module} imports private module {target}")
    assert not bad, "; ".join(bad)


def _top(module: str) -> str:
    """The floor's name of a module; each stage package's ``cli.py`` is part of the CLI floor."""
    parts = module.split(".")
    if parts[-1] == "cli":
        return "cli"
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_name_has_a_floor():
    names = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    assert names <= set(FLOORS), f"give these a floor in FLOORS: {sorted(names - set(FLOORS))}"


def test_imports_go_down_and_stages_never_import_each_other():
    bad = []
    for module, edges in _imports().items():
        mine = _top(module)
        for target, _, _ in edges:
            theirs = _top(target)
            if theirs == mine:
                continue
            if FLOORS[theirs] > FLOORS[mine] or (FLOORS[theirs] == FLOORS[mine] == 1):
                bad.append(f"{module} -> {target}")
    assert not bad, f"{len(bad)} imports across floors: " + "; ".join(bad)


def test_the_check_catches_a_stage_to_stage_import(tmp_path, monkeypatch):
    """The floor rule is not vacuous: a distill module importing cpt is reported."""
    graph = _imports()
    graph["finemed.distill.train"] = graph.get("finemed.distill.train", []) + [("finemed.cpt.train", [], True)]
    monkeypatch.setattr(sys.modules[__name__], "_imports", lambda: graph)
    with pytest.raises(AssertionError, match="finemed.distill.train -> finemed.cpt.train"):
        test_imports_go_down_and_stages_never_import_each_other()


def test_finemed_imports_are_at_module_top():
    inside = [f"{m} -> {t}" for m, edges in _imports().items() for t, _, top in edges if not top]
    assert not inside, f"{len(inside)} finemed imports inside functions: " + "; ".join(inside[:10])


def test_every_named_stage_kind_is_registered():
    from finemed.core import stages

    missing = [k for k in KINDS if k not in stages.discover()]
    assert not missing, f"unregistered stage kinds: {missing}"
    for kind in KINDS:
        sdef = stages.get(kind)
        assert issubclass(sdef.result, stages.StageResult) and sdef.config.model_config.get("extra") == "forbid"


def test_stage_modules_import_without_torch():
    """Validating a recipe must stay fast: no stage module pulls in torch at import time."""
    code = ("import sys, importlib\nfrom finemed.core import stages\n"
            "mods = sorted(set(stages.discover().values()))\n"
            "for m in mods: importlib.import_module(m)\n"
            "heavy = [h for h in ('torch', 'transformers', 'datatrove') if h in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"stage modules import {out} at import time"


@pytest.mark.parametrize("path", sorted(p for p in ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_size(path):
    """One concern, one file: under about 400 lines."""
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 420

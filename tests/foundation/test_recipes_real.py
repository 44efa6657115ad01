"""The shipped recipes: every one validates and plans without problems; the real-scale ones rehearse end to end.

``finemed plan`` checks inputs (each exists, comes from an earlier stage or is a hub id) and the held-out sets it
can read; a rehearsal (``finemed run RECIPE --rehearse``) runs the whole chain on tiny stand-ins, which checks the
held-out sets of sources that earlier stages produce.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path

import pytest

from finemed.core.texts import heldout_texts
from finemed.orchestrate.plan import make_plan
from finemed.orchestrate.recipe import load_recipe, resolve_stages, run_recipe, run_root

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
REAL = ["definemed-qwen2.5-7b", "definemed-mistral-7b", "definemed-mistral-small-24b", "kd-qa-qwen2.5",
        "kd-qa-pythia", "tokenizer-study"]
DEFINEMED = ["definemed-qwen2.5-7b", "definemed-mistral-7b", "definemed-mistral-small-24b"]
# 3 minutes on 2 CPU cores: checked as CPU seconds (this process and its launched children), so that a busy
# machine, where wall time stretches, does not fail the test
REHEARSAL_CPU_BUDGET_S = 2 * 180


def _cpu_seconds() -> float:
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def test_real_scale_recipes_are_shipped():
    names = {p.stem for p in RECIPES}
    assert set(REAL) <= names and "tokenizer-study-mini" in names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_plans_without_problems(path, tmp_path):
    plan = make_plan(path, runs_dir=tmp_path)
    assert plan.problems == []
    assert len(plan.stages) == len(load_recipe(path).stages) == plan.totals["stages"]
    assert (run_root(load_recipe(path), tmp_path) / "plan.json").is_file()


@pytest.mark.parametrize("name", ["quickstart", *DEFINEMED])
def test_heldout_sets_are_non_empty(name, tmp_path):
    """Every held-out set that exists before the run keeps texts; a set produced by an earlier stage (the corpus
    output) is checked by the rehearsal, whose cpt and merge stages fail on an empty set."""
    path = REPO / "recipes" / f"{name}.yaml"
    recipe = load_recipe(path)
    root = run_root(recipe, tmp_path)
    checked = 0
    for entry, cfg in resolve_stages(recipe, root, str(path)):
        fraction = getattr(cfg, "heldout_fraction", None)
        if fraction is None or not hasattr(cfg, "general_eval"):
            continue
        for set_name, ts in {"domain": cfg.domain, **cfg.general_eval}.items():
            if ts.source.startswith(str(root)):
                continue  # produced by an earlier stage: the rehearsal checks it
            n = len(heldout_texts(ts.source, fraction, getattr(cfg, "seed", 0), max_docs=1))
            assert n == 1, f"{entry.name}: held-out set {set_name} ({ts.source}) is empty at {fraction}"
            checked += 1
    assert checked >= 4  # cpt and merge, two general sets each


def _rehearse(name: str, tmp_path: Path) -> tuple[Path, list, list[str], float]:
    """Run the rehearsal; return its run dir, outcomes, the logged replacement lines and the seconds it took."""
    path = REPO / "recipes" / f"{name}.yaml"
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep(level=logging.INFO)
    logger = logging.getLogger("finemed.orchestrate.recipe")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        outcomes = run_recipe(path, rehearse=True, runs_dir=tmp_path)
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    root = run_root(load_recipe(path), tmp_path, rehearse=True)
    swaps: list = []
    resolve_stages(load_recipe(path), root, str(path), rehearse=True, swaps=swaps)
    assert swaps, "a rehearsal of a real-scale recipe replaces its models or data"
    for stage, key, old, new in swaps:
        assert f"  {stage}.{key}: {old} -> {new}" in lines, f"replacement {stage}.{key} not logged"
    print(f"rehearsal {name}: {seconds:.1f} s wall, {cpu:.1f} CPU s")
    assert cpu < REHEARSAL_CPU_BUDGET_S
    return root, outcomes, lines, seconds


@pytest.mark.parametrize("name", DEFINEMED)
def test_definemed_rehearsal(name, tmp_path):
    root, outcomes, _, _ = _rehearse(name, tmp_path)
    assert {o.status for o in outcomes} == {"complete"} and len(outcomes) == 10
    labels = [json.loads(x) for x in (root / "annotate" / "labels.jsonl").read_text().splitlines()]
    assert labels and {"id", "text", "label"} <= set(labels[0])
    assert (root / "classifier" / "classifier.json").is_file()
    assert any((root / "corpus" / "output").rglob("*.parquet"))
    assert (root / "cpt" / "model" / "config.json").is_file()
    heldout = json.loads((root / "cpt" / "metrics.json").read_text())["heldout_docs"]
    assert set(heldout) == {"domain", "general_de", "general_en"} and min(heldout.values()) >= 1  # corpus output too
    assert (root / "merge" / "merged" / "config.json").is_file()
    answers = (root / "answers" / "answers.jsonl").read_text().splitlines()
    assert len({json.loads(x)["model"] for x in answers}) == len(load_recipe(REPO / "recipes" / f"{name}.yaml")
                                                                 .stages[5].config["models"])
    assert (root / "judge" / "judgments.jsonl").read_text().strip()
    for stage in ("failures", "mcq", "qa"):
        assert (root / stage / "metrics.json").is_file()


@pytest.mark.parametrize("name", ["kd-qa-qwen2.5", "kd-qa-pythia"])
def test_kd_qa_rehearsal(name, tmp_path):
    root, outcomes, _, _ = _rehearse(name, tmp_path)
    recipe = load_recipe(REPO / "recipes" / f"{name}.yaml")
    assert {o.status for o in outcomes} == {"complete"} and len(outcomes) == len(recipe.stages)
    assert sum(s.kind == "train.distill" for s in recipe.stages) == 2  # two students, each scored by eval.qa
    for o in outcomes:
        if "parameter_reduction_pct" in o.result:  # the two distill stages
            assert 0 < o.result["parameter_reduction_pct"] < 100 and o.result["retention"]
            assert o.result["qa"]
    students = sorted(root.glob("distill_*/student/config.json"))
    assert len(students) == 2
    assert sorted(p.name for p in root.glob("qa_*") if (p / "metrics.json").is_file()) == \
        sorted(s.name for s in load_recipe(REPO / "recipes" / f"{name}.yaml").stages if s.kind == "eval.qa")


def test_tokenizer_study_rehearsal(tmp_path):
    root, outcomes, _, _ = _rehearse("tokenizer-study", tmp_path)
    assert [o.status for o in outcomes] == ["complete"]
    assert (root / "study" / "metrics.json").is_file()

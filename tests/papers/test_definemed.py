"""``papers.definemed``: its pure helpers, and a tiny ``--rehearse`` of recipes/papers/definemed-mini.yaml.

The rehearsal points ``$FINEMED_CACHE`` at a temporary dir whose ``models/smollm2`` is a tiny random chat model
(:func:`finemed.models.tiny.save_tiny`), so every ``${cache}/models/smollm2`` in the recipe is that stand-in and
each stage's ``rehearse:`` mapping shrinks its steps and limits: the chain runs in seconds per stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.config import FinemedError
from finemed.papers.definemed import rule_pick
from finemed.papers.measures import mcnemar, paired_bootstrap, require_models
from finemed.recipe import load_recipe, run_recipe, run_root

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "papers" / "definemed-mini.yaml"


def test_rule_pick_prefers_hurt_runs_with_low_bpb():
    rows = [{"run": "a", "probe": 0.30, "domain_bpb": 1.0}, {"run": "b", "probe": 0.10, "domain_bpb": 1.2},
            {"run": "c", "probe": 0.05, "domain_bpb": 1.1}]
    for r in rows:
        r["domain_bpb_before"] = 1.5
    assert rule_pick(rows, instruct_probe=0.3, drop=0.1) == "c"
    assert rule_pick(rows[:1], instruct_probe=0.3, drop=0.1) == "a"  # none hurt: the lowest probe
    diverged = {"run": "d", "probe": 0.0, "domain_bpb": 3.4, "domain_bpb_before": 1.5}
    assert rule_pick([rows[0], diverged], instruct_probe=0.3, drop=0.1) == "a"  # d hurt, but learned nothing


def test_require_models_names_the_missing_roles():
    models = {"instruct": "a", "merge": "c", "extra": "d"}
    expected = r"papers.definemed: models is missing cpt; give \{instruct: PATH, cpt: PATH, merge: PATH\}"
    with pytest.raises(FinemedError, match=expected):
        require_models(models, ("instruct", "cpt", "merge"), "papers.definemed")
    assert require_models(models, ("instruct", "merge"), "x") == {"instruct": "a", "merge": "c"}


def test_mcnemar_and_paired_bootstrap():
    a = {"items": [{"id": str(i), "passed": i < 8} for i in range(10)]}
    b = {"items": [{"id": str(i), "passed": i < 1} for i in range(10)]}
    res = mcnemar(a, b)
    assert (res["only_first"], res["only_second"], res["items"]) == (7, 0, 10) and res["p"] < 0.05
    mean, lo, hi = paired_bootstrap([0.0] * 20, [1.0] * 10 + [0.0] * 10, 200)
    assert mean == pytest.approx(0.5) and 0 < lo <= mean <= hi < 1


def test_definemed_mini_rehearsal(rehearsal_runs):
    runs = rehearsal_runs
    outcomes = run_recipe(RECIPE, rehearse=True, runs_dir=runs)
    assert {o.status for o in outcomes} == {"complete"} and len(outcomes) == len(load_recipe(RECIPE).stages)
    root = run_root(load_recipe(RECIPE), runs, rehearse=True)
    answers = [json.loads(x) for x in (root / "answers" / "answers.jsonl").read_text().splitlines()]
    assert len({a["model"] for a in answers}) == 3
    found = json.loads((root / "findings" / "metrics.json").read_text())
    assert set(found["probe"]) == {"instruct", "cpt", "merge"} and len(found["cpt_sweep"]) == 5
    assert found["length_ratio"]["merge"] is not None  # reference lengths from GerMedIQ's human answers
    md = (root / "findings" / "findings.md").read_text()
    assert "## CPT sweep" in md and "merging restores instruction following" in md
    assert (root / "findings" / "bpb_vs_probe.png").stat().st_size > 1000

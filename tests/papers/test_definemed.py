"""``papers.definemed``: its pure helpers, and a tiny ``--rehearse`` of recipes/papers/definemed-mini.yaml.

The rehearsal points ``$FINEMED_CACHE`` at a temporary dir whose ``models/smollm2`` is a tiny random chat model
(:func:`finemed.models.tiny.save_tiny`), so every ``${cache}/models/smollm2`` in the recipe is that stand-in and
each stage's ``rehearse:`` mapping shrinks its steps and limits: the chain runs in seconds per stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.core.config import FinemedError
from finemed.orchestrate.recipe import load_recipe, run_recipe, run_root
from finemed.papers.claims import NO_EVIDENCE, WORDS, ClaimSpec, judge_all
from finemed.papers.definemed import DefinemedConfig, evidence
from finemed.papers.measures import mcnemar, paired_bootstrap, require_models
from finemed.papers.select_cpt import rule_pick

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "papers" / "definemed-mini.yaml"


def test_rule_pick_prefers_hurt_runs_with_low_bpb():
    rows = [{"run": "a", "probe_dev": 0.30, "domain_bpb": 1.0}, {"run": "b", "probe_dev": 0.10, "domain_bpb": 1.2},
            {"run": "c", "probe_dev": 0.05, "domain_bpb": 1.1}]
    for r in rows:
        r["domain_bpb_before"] = 1.5
        r["probe"] = 0.99  # the test half: reported, never selected on
    assert rule_pick(rows, instruct_probe=0.3, drop=0.1) == "c"
    assert rule_pick(rows[:1], instruct_probe=0.3, drop=0.1) == "a"  # none hurt: the lowest probe
    diverged = {"run": "d", "probe_dev": 0.0, "domain_bpb": 3.4, "domain_bpb_before": 1.5}
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


def _probe(passed: int, n: int = 20) -> dict:
    return {"pass_rate": passed / n, "items": [{"id": str(i), "passed": i < passed} for i in range(n)]}


def _sweep_case(tmp_path, chosen: str, passes: dict[str, int]):
    sweep_dir = tmp_path / "merge"
    (sweep_dir / "probe").mkdir(parents=True)
    for label, passed in passes.items():
        (sweep_dir / "probe" / f"{label.replace('=', '')}.json").write_text(json.dumps(_probe(passed)))
    sweep = {"chosen": chosen, "points": [{"label": x} for x in ("t=0", *passes, "t=1")]}
    diff = {"merge-instruct": {m + s: v for m in ("off_lang_sentence_share", "length_ratio")
                               for s, v in (("", (0.1, 0.05, 0.15)), ("_p", 0.01), ("_n", 10))}}
    spec = dict(measure="m", alpha=0.05, min_effect=0.05)
    specs = {"cpt_hurts": ClaimSpec(statement="a", test="mcnemar", direction="less", **spec),
             "merge_restores": ClaimSpec(statement="b", test="mcnemar", direction="greater", correction="holm",
                                         family="merge_points", **spec),
             "merge_mixing": ClaimSpec(statement="c", test="paired_bootstrap", direction="greater", **spec),
             "merge_verbosity": ClaimSpec(statement="d", test="paired_bootstrap", direction="greater", **spec)}
    cfg = DefinemedConfig(select="x", sweep=str(sweep_dir), failures="f", models={}, claims=specs, bootstrap=500)
    return cfg, sweep, sweep_dir, {"diff": diff}, specs


def test_an_end_point_handed_on_is_no_merge(tmp_path):
    """The sweep's rule handed on t=0 (the instruct model): 'merging restores' is judged on the family's best merge
    point with its Holm-adjusted p (8 items vs CPT's 0: p = 2 x 0.5^8 x 2 = 0.016), and the merge-vs-instruct
    failure claims are not testable (no merged model answered), never 'holds'."""
    cfg, sweep, sweep_dir, fail, specs = _sweep_case(tmp_path, "t=0", {"t=0.3": 8, "t=0.5": 2})
    probes = {"instruct": _probe(10), "cpt": _probe(0), "merge": _probe(10)}  # merge = the instruct model
    ev = evidence(cfg, sweep, sweep_dir, probes, fail)
    assert ev["merge_restores"].p == pytest.approx(2 * 2 * 0.5 ** 8, abs=1e-4)
    assert ev["merge_restores"].estimate == pytest.approx(0.4) and "handed on t=0" in ev["merge_restores"].detail
    out = judge_all(specs, ev)
    assert out["merge_restores"].verdict == "holds"
    assert out["merge_mixing"].verdict == out["merge_verbosity"].verdict == "not testable here"


def test_merge_restores_is_holm_corrected_over_the_sweep(tmp_path):
    """The chosen merge passes 6 items CPT fails (McNemar p = 2 x 0.5^6 = 0.031 < 0.05), but it is the best of
    three merge points (the others: 5 items, p = 0.0625): Holm makes it 3 x 0.031 = 0.094, no evidence."""
    cfg, sweep, sweep_dir, fail, specs = _sweep_case(tmp_path, "t=0.5", {"t=0.3": 5, "t=0.5": 6, "t=0.7": 5})
    probes = {"instruct": _probe(8), "cpt": _probe(0), "merge": _probe(6)}
    ev = evidence(cfg, sweep, sweep_dir, probes, fail)
    assert ev["merge_restores"].p == pytest.approx(3 * 2 * 0.5 ** 6, abs=1e-3)
    assert ev["merge_restores"].estimate == pytest.approx(0.3) and ev["merge_restores"].lo > 0
    out = judge_all(specs, ev)
    assert out["merge_restores"].verdict == NO_EVIDENCE  # uncorrected, it would read "holds"
    assert out["cpt_hurts"].verdict == "holds" and out["merge_mixing"].verdict == "holds"
    with pytest.raises(ValueError, match="missing merge_verbosity"):
        DefinemedConfig(select="x", sweep="s", failures="f", models={},
                        claims={k: v for k, v in specs.items() if k != "merge_verbosity"})


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
    assert "## CPT sweep" in md and "Merging restores instruction following" in md
    assert set(found["claims"]) == {"cpt_hurts", "merge_restores", "merge_mixing", "merge_verbosity"}
    assert all(v.split(":")[0] in WORDS for v in found["claims"].values()) and len(found["claims_hash"]) == 16
    assert (root / "findings" / "bpb_vs_probe.png").stat().st_size > 1000
    assert not Path("docs").exists()  # a rehearsal never overwrites docs/results (cwd is the test's tmp dir)

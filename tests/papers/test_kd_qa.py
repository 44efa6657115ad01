"""``papers.kd_qa`` and ``data.qa_split``: the article split, and a tiny ``--rehearse`` of
recipes/papers/kd-qa-mini.yaml (a tiny random chat model stands in for ``${cache}/models/smollm2``; each stage's
``rehearse:`` mapping shrinks steps, lengths and the test set, so every stage runs in seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.core.plateau import PlateauRule
from finemed.data.loaders import load_squad
from finemed.orchestrate.recipe import load_recipe, run_recipe, run_root
from finemed.papers.claims import DOES_NOT_HOLD, HOLDS, NOT_TESTABLE, WORDS
from finemed.papers.kd_qa import KdQaConfig, end_change, judge_claims
from finemed.sft.split import QASplitConfig
from finemed.sft.split import run as split_run

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "papers" / "kd-qa-mini.yaml"


def test_split_has_no_shared_article_and_mixes_languages(tmp_path):
    cfg = QASplitConfig(sources=[{"data": "xquad.en", "lang": "en"}, {"data": "mlqa.de", "lang": "de"}],
                        max_test=10, max_context_chars=1000)
    res = split_run(cfg, tmp_path)
    train, test = load_squad(tmp_path / "train.json"), load_squad(tmp_path / "test.json")
    assert not {e.title for e in train} & {e.title for e in test}
    assert not {e.context for e in train} & {e.context for e in test}
    assert res.test_questions == 20 and all(len(e.context) <= 1000 for e in test)
    langs = json.loads((tmp_path / "split.json").read_text())["lang"]
    assert [langs[e.id] for e in test][:20].count("de") == 10
    assert len({langs[e.id] for e in test[:6]}) == 2  # interleaved: a limit still mixes the languages


def _cfg(students=("half",)) -> KdQaConfig:
    recipe = load_recipe(RECIPE)
    claims = next(s for s in recipe.stages if s.kind == "papers.kd_qa").config["claims"]
    return KdQaConfig(split="s", base="b", teacher="t", bootstrap=400, claims=claims,
                      students={s: {"kd": "k", "ce": "c", "distill": "d"} for s in students})


def test_kd_claims_at_the_floor_are_not_testable_and_real_effects_hold():
    """Students that score 0 and 0 give KD − CE = 0: 'not testable here', never 'does not hold'."""
    n = 40
    teacher = {0: {"f1": [0.4] * n, "exact_match": [0.2] * n}, 1: {"f1": [0.6] * n, "exact_match": [0.4] * n}}
    untuned = {0: {"f1": [0.1] * n, "exact_match": [0.0] * n}, 1: {"f1": [0.2] * n, "exact_match": [0.05] * n}}
    zero = {0: {"f1": [0.0] * n, "exact_match": [0.0] * n}, 1: {"f1": [0.0] * n, "exact_match": [0.0] * n}}
    per_q = {"untuned": untuned, "teacher": teacher, "half_kd": zero, "half_ce": zero}
    verdicts, specs = judge_claims(_cfg(), per_q)
    assert verdicts["kd_beats_ce.half"].verdict == NOT_TESTABLE
    assert verdicts["one_shot_helps.half_kd"].verdict == NOT_TESTABLE
    assert verdicts["students_retain.half"].verdict == DOES_NOT_HOLD  # the teacher answers, the student does not
    assert verdicts["teacher_beats_untuned"].verdict == HOLDS and verdicts["one_shot_helps.teacher"].verdict == HOLDS
    assert specs["kd_beats_ce.half"].family == "kd_beats_ce"
    mixed = [0.5, 0.0] * (n // 2)  # KD 0.25 mean vs CE 0: KD better, clearly above the floor
    per_q["half_kd"] = {0: {"f1": mixed, "exact_match": mixed}, 1: {"f1": mixed, "exact_match": mixed}}
    verdicts, _ = judge_claims(_cfg(), per_q)
    assert verdicts["kd_beats_ce.half"].verdict == HOLDS


def test_end_change_is_what_the_plateau_rule_compares():
    """The improvement over the rule's last window at the ceiling: from the last scored step at or before 80% of
    the steps to the final bpb; none without a rule, a final score or an early enough point."""
    rule = PlateauRule(eval_every=40, window=0.2, min_change=0.01, min_steps=80)
    history = [(0, 6.0), (40, 3.0), (80, 2.8), (120, 2.6), (160, 2.5)]
    assert end_change(history, 200, 2.4, rule) == pytest.approx(0.1 / 2.5)  # still 4% better: not plateaued
    assert end_change(history, 200, 2.5, rule) == 0.0 and end_change(history, 200, 2.6, rule) < 0  # flat, worse
    assert end_change(history, 150, 2.55, rule) == pytest.approx(0.05 / 2.6)  # 150 - 30 = 120
    assert end_change(history, 200, None, rule) is None and end_change(history, 200, 2.4, None) is None
    assert end_change([(100, 2.0)], 100, 2.0, rule) is None


def test_kd_qa_mini_rehearsal(rehearsal_runs, tmp_path):
    runs = rehearsal_runs
    outcomes = run_recipe(RECIPE, rehearse=True, runs_dir=runs)
    assert {o.status for o in outcomes} == {"complete"} and len(outcomes) == len(load_recipe(RECIPE).stages)
    root = run_root(load_recipe(RECIPE), runs, rehearse=True)
    found = json.loads((root / "findings" / "metrics.json").read_text())
    students = {f"{size}_{how}" for size in ("third", "large") for how in ("kd", "ce")}
    assert set(found["scores"]) == {"untuned", "teacher", *students}
    assert set(found["scores"]["untuned"]) == {"1shot"} and set(found["scores"]["teacher"]) == {"0shot", "1shot"}
    assert found["parameter_reduction_pct"]["third_kd"] >= 40 and found["questions"] == 6  # one size >= 40% smaller
    assert set(found["kd_minus_ce"]["third"]) >= {"1shot.f1", "0shot.exact_match"}
    # every student trained under the plateau rule (scored every step in the rehearsal); its steps are reported
    assert set(found["steps"]) == students
    for name in students:
        distill = json.loads((root / name / "metrics.json").read_text())
        assert distill["kd_train"]["plateau"][0][0] == 0 and found["steps"][name].startswith(str(distill["steps"]))
    md = (root / "findings" / "findings.md").read_text()
    assert "## KD − CE" in md and "Students retain a large share" in md and "## Training to the plateau" in md
    assert "change over the last window at the end" in md
    assert all(v.split(":")[0] in WORDS for v in found["claims"].values()) and len(found["claims_hash"]) == 16
    assert not (tmp_path / "docs").exists()  # a rehearsal never overwrites docs/results
    sft = json.loads((root / "teacher" / "metrics.json").read_text())
    assert sft["steps"] == 2 and sft["eval_loss_after"] is not None

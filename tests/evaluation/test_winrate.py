"""Win-rates, Bradley–Terry, length control, fold-change and the stage outputs."""

import json

import numpy as np
import pytest

from finemed.core.config import FinemedError
from finemed.core.stages import get, run_stage
from finemed.evaluation.judge import PairJudgment
from finemed.evaluation.winrate import (
    FoldSpec,
    WinrateStageConfig,
    bradley_terry,
    compute_winrates,
    length_controlled,
    pair_table,
)


def J(pid, a, b, outcome, la=10, lb=10):
    return PairJudgment(prompt_id=str(pid), model_a=a, model_b=b, outcome=outcome, len_a=la, len_b=lb)


def test_pair_table_ties_half_invalid_excluded():
    js = [J(1, "x", "y", "a"), J(2, "x", "y", "tie"), J(3, "x", "y", "b"), J(4, "x", "y", "a"),
          J(5, "x", "y", "invalid")]
    t = pair_table(js)
    assert t["x"]["y"] == {"win": 2, "tie": 1, "loss": 1, "invalid": 1, "n": 4, "winrate": 0.625}
    assert t["y"]["x"]["winrate"] == pytest.approx(0.375)


def test_bradley_terry_recovers_known_strengths():
    rng = np.random.default_rng(0)
    true = {"s": 1.5, "m": 0.5, "w": -2.0}
    js, k = [], 0
    for _ in range(400):
        a, b = rng.choice(list(true), 2, replace=False)
        p = 1 / (1 + np.exp(-(true[a] - true[b])))
        js.append(J(k, a, b, "a" if rng.random() < p else "b"))
        k += 1
    bt = bradley_terry(js, bootstrap=50)
    assert [m for m in sorted(bt, key=lambda m: bt[m]["rank"])] == ["s", "m", "w"]
    # Elo scale: difference / (400/ln10) ≈ true logit difference
    d = (bt["s"]["score"] - bt["w"]["score"]) * np.log(10) / 400
    assert d == pytest.approx(3.5, abs=0.6)
    for m in bt:
        assert bt[m]["lo"] <= bt[m]["score"] <= bt[m]["hi"]


def test_length_controlled_removes_pure_length_preference():
    # "long" wins only when it is longer; at equal length it ties 50/50 → LC ≈ 0.5 while raw ≫ 0.5
    js = []
    for i in range(200):
        longer = i % 4 != 0
        la, lb = (300, 100) if longer else (100, 100)
        out = "a" if longer else ("a" if i % 8 == 0 else "b")
        js.append(J(i, "long", "ref", out, la, lb))
    lc = length_controlled(js, "ref")["long"]
    assert lc["winrate"] > 0.8
    assert lc["lc_winrate"] < lc["winrate"] - 0.2
    assert lc["length_coef"] > 0


def test_fold_change():
    js = [J(i, "after", "ref", "a" if i < 7 else "b") for i in range(10)]
    js += [J(i, "before", "ref", "a" if i < 2 else "b") for i in range(10)]
    res = compute_winrates(js, fold=[FoldSpec(before="before", after="after", reference="ref")], bootstrap=0)
    assert res["fold_change"][0]["fold_change"] == pytest.approx(3.5)
    with pytest.raises(FinemedError, match="fold-change"):
        compute_winrates(js, fold=[FoldSpec(before="nope", after="after", reference="ref")], bootstrap=0)


def test_stage_on_bundled_germedbench_scores(tmp_path):
    cfg = WinrateStageConfig(answers="builtin:germedbench_patient_text", judge="scores:overall", bootstrap=20,
                             reference="mistralai/Mistral-Small-24B-Instruct-2501")
    res = run_stage("eval.winrates", cfg, tmp_path).result  # the old kind is an alias of eval.pairwise
    saved = json.loads((tmp_path / "winrates.json").read_text())
    assert saved["ranking"] == res["ranking"] and len(res["ranking"]) == 13
    assert saved["outcomes"]["invalid"] == 0 and saved["n_judgments"] == 3900
    assert (tmp_path / "winrates_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert res["top"].startswith(res["ranking"][0])
    assert len(res["length_controlled"]) == 12
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["top"] == res["top"] and get("eval.winrates").kind == "eval.pairwise"
    assert (tmp_path / "judgments.jsonl").read_text().count("\n") == 3900

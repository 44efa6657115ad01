"""SmolLM2-135M-Instruct on XQuAD-en 1-shot (n=30) through ``eval qa``: lm-eval's numbers equal the official-
script rescoring of its predictions, and the model does extract some answers."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_smollm2_xquad_en_1shot(tmp_path):
    from finemed.data.loaders import load_squad
    from finemed.evaluation.qa import QaEvalConfig
    from finemed.evaluation.qa_metrics import score_predictions
    from finemed.stages import run_stage

    res = run_stage("eval.qa", QaEvalConfig(model="smollm2", tasks=["xquad_en_1shot"], limit=30), tmp_path).result
    r = res["tasks"]["xquad_en_1shot"]
    preds = json.loads((tmp_path / "predictions_xquad_en_1shot.json").read_text())
    again = score_predictions(load_squad(name="xquad.en")[:30], preds, "en")
    assert r["n"] == 30 and again["exact_match"] == pytest.approx(r["exact_match"])
    assert again["f1"] == pytest.approx(r["f1"])
    assert r["f1"] > 5.0  # a 1-shot prompt makes SmolLM2 copy spans; a random model scores 0
    assert json.loads((tmp_path / "metrics.json").read_text())["summary"].startswith("xquad_en_1shot EM")

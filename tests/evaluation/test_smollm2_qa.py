"""SmolLM2-135M-Instruct on XQuAD-en 1-shot (n=30) through ``eval qa``: lm-eval's numbers equal the tests' own
copy of the official SQuAD v1.1 script (``official_scripts.py``, independent of finemed) on its predictions, and
the model does extract some answers."""

import json

import official_scripts as official
import pytest

pytestmark = pytest.mark.slow


def test_smollm2_xquad_en_1shot(tmp_path):
    from finemed.core.qa_eval import QaEvalConfig
    from finemed.core.stages import run_stage
    from finemed.data.loaders import load_squad

    res = run_stage("eval.qa", QaEvalConfig(model="smollm2", tasks=["xquad_en_1shot"], limit=30), tmp_path).result
    r = res["tasks"]["xquad_en_1shot"]
    preds = json.loads((tmp_path / "predictions_xquad_en_1shot.json").read_text())
    golds = {ex.id: ex.answers for ex in load_squad(name="xquad.en")[:30]}
    assert r["n"] == 30 and set(preds) == set(golds)
    again = official.evaluate(golds, preds, "en", "squad")
    assert {k: r[k] for k in again} == pytest.approx(again), (r, again)
    assert r["f1"] > 5.0  # a 1-shot prompt makes SmolLM2 copy spans; a random model scores 0
    assert json.loads((tmp_path / "metrics.json").read_text())["summary"].startswith("xquad_en_1shot EM")

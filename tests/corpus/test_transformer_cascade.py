"""Transformer classifier (tiny XLM-R-shaped model) and the fastText→transformer cascade."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finemed.core.runtime import resolve
from finemed.corpus.cascade import CascadeConfig
from finemed.corpus.cascade import run as run_cascade
from finemed.corpus.classifier_transformer import TransformerScorer, save_tiny_base
from finemed.corpus.scorers import CascadeScorer, load_scorer
from finemed.corpus.train_classifier import TrainClassifierConfig, train


def test_tiny_transformer_few_steps_and_cascade(small_dev, small_clf, tmp_path):
    """A few training steps of a tiny random XLM-R: the plumbing, the runtime device and the cascade's routing."""
    base = save_tiny_base(tmp_path / "base", hidden_size=16, num_layers=1)
    cfg = TrainClassifierConfig(input=str(small_dev), kind="transformer", base_model=str(base), epochs=0.05,
                                max_length=32, batch_size=32, learning_rate=1e-3, target_precision=0.8)
    res = train(cfg, tmp_path / "tr")
    meta = json.loads((tmp_path / "tr" / "classifier.json").read_text())
    assert res.kind == meta["kind"] == "transformer" and meta["max_length"] == 32
    assert res.split["test"] == res.test.support_pos + res.test.support_neg > 100
    scorer = load_scorer(tmp_path / "tr")
    assert isinstance(scorer, TransformerScorer)
    scores = scorer.score(["Der Patient erhielt 5 mg Ramipril.", "Das Fußballspiel endete 2:1."])
    assert scores.shape == (2,) and ((0 <= scores) & (scores <= 1)).all()
    assert scorer.runtime.device == resolve("auto").device  # scores on the runtime's device
    c = run_cascade(CascadeConfig(input=str(small_dev), fasttext=str(small_clf), transformer=str(tmp_path / "tr"),
                                  prefilter_recall=0.98), tmp_path / "cascade")
    assert 0 < c.share_to_transformer < 0.7  # the fastText prefilter removes most negatives
    cmeta = json.loads((tmp_path / "cascade" / "classifier.json").read_text())
    assert cmeta["kind"] == "cascade" and cmeta["prefilter_threshold"] == c.prefilter_threshold
    cascade = load_scorer(tmp_path / "cascade")
    assert isinstance(cascade, CascadeScorer)
    texts = ["Fußball ist ein Spiel.", "Der Patient wurde mit akuter Dyspnoe und Fieber stationär aufgenommen."]
    got = cascade.score(texts)
    ft = load_scorer(small_clf).score(texts)
    expect = np.where(ft >= c.prefilter_threshold, scorer.score(texts), 0.0)
    assert np.allclose(got, expect, atol=1e-2)  # fastText gates, the transformer scores the survivors


@pytest.mark.slow  # ~1 min on a loaded 2-core box (training + scoring the splits twice)
def test_tiny_transformer_learns_and_cascade_keeps_recall(small_dev, small_clf, tmp_path):
    base = save_tiny_base(tmp_path / "base")
    cfg = TrainClassifierConfig(input=str(small_dev), kind="transformer", base_model=str(base), epochs=2,
                                max_length=96, batch_size=16, learning_rate=1e-3, target_precision=0.8)
    res = train(cfg, tmp_path / "tr")
    assert res.kind == "transformer" and (tmp_path / "tr" / "pr_curve.png").is_file()
    assert res.test.f1 > 0.5  # it learned something: a random model is ~0.4 at best here
    scores = load_scorer(tmp_path / "tr").score(["Der Patient erhielt 5 mg Ramipril.", "Das Fußballspiel endete 2:1."])
    assert scores.shape == (2,) and ((0 <= scores) & (scores <= 1)).all()
    c = run_cascade(CascadeConfig(input=str(small_dev), fasttext=str(small_clf), transformer=str(tmp_path / "tr"),
                                  prefilter_recall=0.98), tmp_path / "cascade")
    assert 0 < c.share_to_transformer < 0.7  # the prefilter removes most negatives
    assert c.recall_relative_to_transformer >= 0.9
    assert json.loads((tmp_path / "cascade" / "classifier.json").read_text())["kind"] == "cascade"
    assert load_scorer(tmp_path / "cascade").score(["Fußball ist ein Spiel."]).shape == (1,)

"""Transformer classifier (tiny XLM-R-shaped model) and the fastText→transformer cascade."""

from __future__ import annotations

import json

import pytest

from finemed.corpus.cascade import build_cascade
from finemed.corpus.classifier_transformer import save_tiny_base
from finemed.corpus.domain import load_scorer
from finemed.corpus.train_classifier import TrainClassifierConfig, train_classifier


@pytest.mark.slow  # ~1 min on a loaded 2-core box (training + scoring the splits twice)
def test_tiny_transformer_and_cascade(small_dev, small_clf, tmp_path):
    base = save_tiny_base(tmp_path / "base")
    cfg = TrainClassifierConfig(input=str(small_dev), kind="transformer", base_model=str(base), epochs=2,
                                max_length=96, batch_size=16, learning_rate=1e-3, target_precision=0.8)
    meta = train_classifier(cfg, tmp_path / "tr")
    assert meta["kind"] == "transformer" and (tmp_path / "tr" / "pr_curve.png").is_file()
    assert meta["test"]["f1"] > 0.5  # it learned something: a random model is ~0.4 at best here
    scores = load_scorer(tmp_path / "tr").score(["Der Patient erhielt 5 mg Ramipril.", "Das Fußballspiel endete 2:1."])
    assert scores.shape == (2,) and ((0 <= scores) & (scores <= 1)).all()
    c = build_cascade(str(small_dev), small_clf, tmp_path / "tr", tmp_path / "cascade", prefilter_recall=0.98)
    assert 0 < c["share_to_transformer"] < 0.7  # the prefilter removes most negatives
    assert c["recall_relative_to_transformer"] >= 0.9
    assert json.loads((tmp_path / "cascade" / "classifier.json").read_text())["kind"] == "cascade"
    assert load_scorer(tmp_path / "cascade").score(["Fußball ist ein Spiel."]).shape == (1,)

"""The correlation helper on a hand-computed example."""

from __future__ import annotations

import math

import pytest

from finemed.core.config import FinemedError
from finemed.tokenizer.correlate import correlate, read_scores


def test_spearman_pearson_hand_computed(tmp_path):
    metrics = {name: {"deu_Latn": {"fertility": f}} for name, f in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]}
    csv = tmp_path / "scores.csv"
    csv.write_text("tokenizer,qa_f1,unused\na,10,\nb,8,\nc,9,\nd,5,\nzz,1,\n", encoding="utf-8")
    (c,) = correlate(metrics, read_scores(csv), metric="fertility", lang="deu_Latn")
    assert c.n == 4 and c.tokenizers == ["a", "b", "c", "d"]  # zz has no metrics: left out
    # ranks x 1 2 3 4, y 4 2 3 1: Σd² = 18 → rho = 1 − 6·18 / (4·15) = −0.8
    assert c.spearman == pytest.approx(-0.8)
    # Σdx·dy = −7, Σdx² = 5, Σdy² = 14 → r = −7 / √70
    assert c.pearson == pytest.approx(-7 / math.sqrt(70))


def test_correlate_bad_input(tmp_path):
    metrics = {"a": {"deu_Latn": {"fertility": 1.0}}, "b": {"deu_Latn": {"fertility": 2.0}}}
    csv = tmp_path / "s.csv"
    csv.write_text("tokenizer,score\na,1\nb,2\n", encoding="utf-8")
    with pytest.raises(FinemedError, match="only 2 tokenizers .* at least 3"):
        correlate(metrics, read_scores(csv))
    csv.write_text("name,score\na,1\n", encoding="utf-8")
    with pytest.raises(FinemedError, match="'tokenizer' column"):
        read_scores(csv)
    csv.write_text("tokenizer,score\na,high\n", encoding="utf-8")
    with pytest.raises(FinemedError, match=r"s.csv:2: score='high' is not a number"):
        read_scores(csv)
    with pytest.raises(FinemedError, match="metric 'speed' unknown"):
        correlate(metrics, {"score": {"a": 1.0}}, metric="speed")

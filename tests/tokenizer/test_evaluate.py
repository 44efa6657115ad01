"""The eval table's file (tokenizer_metrics.json, not the runner's metrics.json) and the eval Result's headline."""

from __future__ import annotations

import pytest

from finemed.core.config import FinemedError
from finemed.tokenizer.evaluate import METRICS_FILE, evaluate, lowest_fertility, read_eval, write_eval
from finemed.tokenizer.parallel import ParallelSet

EN = ["the cat", "a dog runs"]  # chunk3: 6 tokens, 5 words
DE = ["die Katze", "ein Hund rennt"]  # chunk3: 8 tokens, 5 words


def test_write_and_read_eval(chunk3, tmp_path):
    data = ParallelSet("t", {"eng_Latn": EN, "deu_Latn": DE}, ["0", "1"])
    metrics, details = evaluate([chunk3], data, ["eng_Latn", "deu_Latn"])
    paths = write_eval(metrics, details, tmp_path)
    assert paths["metrics"].name == METRICS_FILE == "tokenizer_metrics.json"
    assert not (tmp_path / "metrics.json").exists()  # that name belongs to the stage runner
    assert read_eval(tmp_path) == (metrics, details) == read_eval(paths["metrics"])
    assert read_eval(tmp_path, need_details=False)[0]["chunk3"]["deu_Latn"]["fertility"] == pytest.approx(8 / 5)
    with pytest.raises(FinemedError, match="tokenizer_metrics.json is missing; run `finemed tokenizer eval"):
        read_eval(tmp_path / "nowhere")


def test_lowest_fertility_on_first_non_reference_language():
    metrics = {"a": {"eng_Latn": {"fertility": 1.1}, "deu_Latn": {"fertility": 2.0}},
               "b": {"eng_Latn": {"fertility": 1.3}, "deu_Latn": {"fertility": 1.5}}}
    assert lowest_fertility(metrics, ["eng_Latn", "deu_Latn"]) == "b 1.500 (deu_Latn)"
    assert lowest_fertility(metrics, ["eng_Latn"]) == "a 1.100 (eng_Latn)"
    assert lowest_fertility({}, ["deu_Latn"]) is None

"""fastText domain classifier: tuned threshold on a held-out split by source, P/R/F1 and the PR curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.corpus.classifier_eval import split_by_source
from finemed.corpus.rows import read_rows


def test_split_keeps_sources_stratified_and_near_duplicates_together(small_dev):
    rows = list(read_rows(small_dev))
    sp = split_by_source(rows)
    where = {r["group"]: k for k, v in sp.items() for r in v}
    for k, v in sp.items():
        for r in v:
            assert where[r["group"]] == k
    sources = lambda part: {r["source"].replace("+neardup", "") for r in part}  # noqa: E731
    assert {"grascco", "germediq/human", "xquad-de"} <= sources(sp["test"])


def test_fasttext_precision_at_tuned_threshold(small_clf):
    meta = json.loads((small_clf / "classifier.json").read_text())
    assert meta["kind"] == "fasttext" and 0 < meta["threshold"] < 1
    # tuned for precision 0.9 on the valid split; the test split of this small input measures 0.89: the GerMedIQ
    # interviews carry the human answers only (their questions are evaluation prompts), harder to tell apart
    assert meta["test"]["precision"] >= 0.85 and meta["test"]["recall"] >= 0.7
    assert meta["test"]["support_pos"] > 20 and meta["test"]["support_neg"] > 20
    assert (small_clf / "pr_curve.png").stat().st_size > 5000


def test_a_silently_diverged_fasttext_model_is_caught_and_retried_at_half_the_lr(small_dev, tmp_path, monkeypatch,
                                                                                  caplog):
    """CI once trained a model whose scores were all saturated (tuned threshold 1.0) without fastText raising:
    a model that does not separate its own training docs is retried at half the lr, and four such tries fail
    with one line."""

    from finemed.core.config import FinemedError
    from finemed.corpus import classifier_fasttext as cf
    from finemed.corpus.classifier_eval import split_by_source
    from finemed.corpus.train_classifier import TrainClassifierConfig, labelled_rows

    train_rows = split_by_source(labelled_rows(TrainClassifierConfig(input=str(small_dev)))[0])["train"]
    texts, labels = [r["text"] for r in train_rows], [r["label"] for r in train_rows]
    real, lrs = cf._train_isolated, []

    def inverted_first(train_file, lr, kwargs, out):  # the first try learns the labels the wrong way round
        lrs.append(lr)
        if len(lrs) == 1:
            flipped = tmp_path / "flipped.txt"
            flipped.write_text(Path(train_file).read_text().replace("__label__1 ", "__label__x ")
                               .replace("__label__0 ", "__label__1 ").replace("__label__x ", "__label__0 "))
            train_file = str(flipped)
        real(train_file, lr, kwargs, out)

    monkeypatch.setattr(cf, "_train_isolated", inverted_first)
    out = cf.train_fasttext(texts, labels, tmp_path / "m.bin")
    assert lrs == [0.5, 0.25] and "diverged silently" in caplog.text
    assert cf.training_auc(cf.FastTextScorer(out), texts, labels) > 0.95

    monkeypatch.setattr(cf, "_train_isolated", lambda *a: (_ for _ in ()).throw(RuntimeError("Encountered NaN")))
    with pytest.raises(FinemedError, match="even at lr 0.0625; give it more labelled docs"):
        cf.train_fasttext(texts, labels, tmp_path / "m2.bin")
    assert not (tmp_path / "m2.bin").exists()


def test_a_fasttext_failure_that_is_not_a_nan_is_one_line_with_its_cause(tmp_path):
    """Only fastText's NaN error is retried at a lower lr; any other failure in the training process (here a train
    file that cannot be read) is one line quoting fastText's own message, never reported as a divergence."""
    from finemed.core.config import FinemedError
    from finemed.corpus import classifier_fasttext as cf

    with pytest.raises(FinemedError, match=r"fastText training on .*nope.txt failed: ValueError: .*cannot be opened"):
        cf._train_isolated(str(tmp_path / "nope.txt"), 0.5, {"epoch": 1, "verbose": 0}, tmp_path / "m.bin")
    assert not (tmp_path / "m.bin").exists()

"""fastText domain classifier: tuned threshold on a held-out split by source, P/R/F1 and the PR curve."""

from __future__ import annotations

import json

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

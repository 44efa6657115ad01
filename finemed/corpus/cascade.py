"""Cascade: a fastText prefilter with a recall-oriented threshold, the transformer only on survivors.

The prefilter threshold is the highest one that keeps ``prefilter_recall`` of the positives of the
valid split. Docs under it score 0; the rest get the transformer's score, compared against the
transformer's own tuned threshold. ``build_cascade`` reports on the test split the share of docs
that reach the transformer and the cascade's recall relative to transformer-only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finemed.artifacts import atomic_write_json, read_json
from finemed.corpus.classifier_eval import prf_at, recall_threshold, split_by_source
from finemed.corpus.domain import CLASSIFIER_JSON, load_scorer


class CascadeScorer:
    def __init__(self, fasttext_dir: str, transformer_dir: str, prefilter_threshold: float):
        self.fasttext_dir, self.transformer_dir = fasttext_dir, transformer_dir
        self.prefilter_threshold = prefilter_threshold
        self._ft = self._tr = None
        self.reached = 0
        self.seen = 0

    @classmethod
    def from_meta(cls, clf_dir: Path, meta: dict) -> "CascadeScorer":
        return cls(meta["fasttext_dir"], meta["transformer_dir"], meta["prefilter_threshold"])

    def score(self, texts: list[str]) -> np.ndarray:
        if self._ft is None:
            self._ft, self._tr = load_scorer(self.fasttext_dir), load_scorer(self.transformer_dir)
        ft = self._ft.score(texts)
        out = np.zeros(len(texts))
        idx = np.where(ft >= self.prefilter_threshold)[0]
        if len(idx):
            out[idx] = self._tr.score([texts[i] for i in idx])
        self.seen += len(texts)
        self.reached += len(idx)
        return out

    def __getstate__(self):
        return {**self.__dict__, "_ft": None, "_tr": None}


def build_cascade(input_path: str, fasttext_dir: Path, transformer_dir: Path, out: Path,
                  prefilter_recall: float = 0.98, label_field: str = "medical", seed: int = 0) -> dict:
    from finemed.corpus.readers import read_rows

    rows = [r for r in read_rows(input_path) if r.get(label_field) in (0, 1) and str(r.get("text") or "").strip()]
    sp = split_by_source(rows, seed=seed)
    ft, tr = load_scorer(fasttext_dir), load_scorer(transformer_dir)
    yv = np.array([r[label_field] for r in sp["valid"]])
    t_pre = recall_threshold(yv, ft.score([r["text"] for r in sp["valid"]]), prefilter_recall)
    t_tr = float(read_json(Path(transformer_dir) / CLASSIFIER_JSON)["threshold"])
    texts = [r["text"] for r in sp["test"]]
    y = np.array([r[label_field] for r in sp["test"]])
    tr_only = tr.score(texts)
    cascade = CascadeScorer(str(fasttext_dir), str(transformer_dir), t_pre)
    cs = cascade.score(texts)
    found_tr = (tr_only >= t_tr) & (y == 1)
    found_cs = (cs >= t_tr) & (y == 1)
    meta = {"kind": "cascade", "threshold": t_tr, "prefilter_threshold": t_pre, "prefilter_recall_target": prefilter_recall,
            "fasttext_dir": str(fasttext_dir), "transformer_dir": str(transformer_dir),
            "share_to_transformer": round(cascade.reached / max(1, cascade.seen), 4),
            "recall_relative_to_transformer": round(found_cs.sum() / max(1, found_tr.sum()), 4),
            "test_cascade": prf_at(y, cs, t_tr).model_dump(), "test_transformer_only": prf_at(y, tr_only, t_tr).model_dump()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", meta)
    atomic_write_json(out / CLASSIFIER_JSON, meta)
    return meta

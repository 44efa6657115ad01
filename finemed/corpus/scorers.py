"""Domain scorers from a trained classifier dir: fastText, transformer, or the cascade of both.

A classifier dir holds ``classifier.json`` (``kind``: fasttext | transformer | cascade, the tuned
``threshold``, metrics) and the model files. :func:`load_scorer` returns an object with
``score(texts) -> np.ndarray`` of P(medical); the transformer side (torch) is imported only when used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finemed.core.artifacts import read_json
from finemed.core.config import FinemedError
from finemed.corpus.classifier_fasttext import FastTextScorer
from finemed.corpus.registry import heavy

CLASSIFIER_JSON = "classifier.json"


def load_scorer(clf_dir: Path | str, device: str = "auto", dtype: str = "auto"):
    """The scorer of a classifier dir; transformer models run on ``device``/``dtype`` (:mod:`finemed.core.runtime`)."""
    clf_dir = Path(clf_dir)
    meta_path = clf_dir / CLASSIFIER_JSON
    meta = classifier_meta(clf_dir)
    kind = meta.get("kind")
    if kind == "fasttext":
        return FastTextScorer(clf_dir / "model.bin", max_chars=meta.get("max_chars", 4000))
    if kind == "transformer":
        return heavy("classifier_transformer").TransformerScorer(
            clf_dir / "model", max_length=meta.get("max_length", 256), device=device, dtype=dtype)
    if kind == "cascade":
        return CascadeScorer(meta["fasttext_dir"], meta["transformer_dir"], meta["prefilter_threshold"],
                             device=device, dtype=dtype)
    raise FinemedError(f"{meta_path}: unknown classifier kind {kind!r}; expected fasttext, transformer or cascade")


def classifier_meta(clf_dir: Path | str) -> dict:
    """``clf_dir/classifier.json``, or one line saying the dir is not a trained classifier."""
    meta_path = Path(clf_dir) / CLASSIFIER_JSON
    if not meta_path.is_file():
        raise FinemedError(f"{clf_dir}: no {CLASSIFIER_JSON}; pass a dir written by `finemed corpus train-classifier`")
    try:
        meta = read_json(meta_path)
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        raise FinemedError(f"{meta_path}: not valid JSON ({err}); retrain with `finemed corpus train-classifier`") \
            from None
    if not isinstance(meta, dict):
        raise FinemedError(f"{meta_path}: expected a JSON object; retrain with `finemed corpus train-classifier`")
    return meta


def classifier_threshold(clf_dir: Path | str) -> float:
    meta = classifier_meta(clf_dir)
    if not isinstance(meta.get("threshold"), (int, float)):
        raise FinemedError(f"{Path(clf_dir) / CLASSIFIER_JSON}: no numeric 'threshold'; retrain with "
                           f"`finemed corpus train-classifier` or set pipeline.domain_threshold")
    return float(meta["threshold"])


class CascadeScorer:
    """fastText first; docs at or over ``prefilter_threshold`` get the transformer's score, the rest 0."""

    def __init__(self, fasttext_dir: str, transformer_dir: str, prefilter_threshold: float,
                 device: str = "auto", dtype: str = "auto"):
        self.fasttext_dir, self.transformer_dir = str(fasttext_dir), str(transformer_dir)
        self.prefilter_threshold = prefilter_threshold
        self.device, self.dtype = device, dtype
        self._ft = self._tr = None
        self.reached = 0
        self.seen = 0

    def score(self, texts: list[str], progress: str | None = None) -> np.ndarray:
        if self._ft is None:
            self._ft = load_scorer(self.fasttext_dir)
            self._tr = load_scorer(self.transformer_dir, self.device, self.dtype)
        ft = self._ft.score(texts)
        out = np.zeros(len(texts))
        idx = np.where(ft >= self.prefilter_threshold)[0]
        if len(idx):
            out[idx] = self._tr.score([texts[i] for i in idx], progress=progress)
        self.seen += len(texts)
        self.reached += len(idx)
        return out

    def __getstate__(self):
        return {**self.__dict__, "_ft": None, "_tr": None}

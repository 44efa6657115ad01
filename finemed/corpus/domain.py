"""The domain scorer as a datatrove step, and loading a trained classifier dir.

A classifier dir holds ``classifier.json`` (``kind``: fasttext | transformer | cascade, the tuned
``threshold``, metrics) and the model files. :class:`DomainScoreFilter` writes
``metadata["domain_score"]`` for every doc and, with ``keep_threshold`` set, drops docs below it with
the reason ``domain_below_threshold``.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from finemed.artifacts import read_json
from finemed.config import FinemedError

CLASSIFIER_JSON = "classifier.json"


def load_scorer(clf_dir: Path | str):
    """The scorer of a classifier dir: an object with ``score(texts) -> np.ndarray`` of P(medical)."""
    clf_dir = Path(clf_dir)
    meta_path = clf_dir / CLASSIFIER_JSON
    if not meta_path.is_file():
        raise FinemedError(f"{clf_dir}: no {CLASSIFIER_JSON}; pass a dir written by `finemed corpus train-classifier`")
    meta = read_json(meta_path)
    kind = meta.get("kind")
    if kind == "fasttext":
        from finemed.corpus.classifier_fasttext import FastTextScorer

        return FastTextScorer(clf_dir / "model.bin", max_chars=meta.get("max_chars", 4000))
    if kind == "transformer":
        from finemed.corpus.classifier_transformer import TransformerScorer

        return TransformerScorer(clf_dir / "model", max_length=meta.get("max_length", 256))
    if kind == "cascade":
        from finemed.corpus.cascade import CascadeScorer

        return CascadeScorer.from_meta(clf_dir, meta)
    raise FinemedError(f"{meta_path}: unknown classifier kind {kind!r}; expected fasttext, transformer or cascade")


def classifier_threshold(clf_dir: Path | str) -> float:
    return float(read_json(Path(clf_dir) / CLASSIFIER_JSON)["threshold"])


class DomainScoreFilter(BaseFilter):
    """Score docs in batches with a trained classifier; optionally drop those under ``keep_threshold``."""

    name = "🩺 domain score"

    def __init__(self, classifier_dir: str, keep_threshold: float | None = None, batch_size: int = 256,
                 exclusion_writer=None):
        super().__init__(exclusion_writer, batch_size=batch_size)
        self.classifier_dir = str(classifier_dir)
        self.keep_threshold = keep_threshold
        self._scorer = None

    @property
    def scorer(self):
        if self._scorer is None:
            self._scorer = load_scorer(self.classifier_dir)
        return self._scorer

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        scores = self.scorer.score([d.text for d in batch])
        out: list[bool | tuple[bool, str]] = []
        for doc, s in zip(batch, scores):
            doc.metadata["domain_score"] = round(float(s), 5)
            keep = self.keep_threshold is None or s >= self.keep_threshold
            out.append(True if keep else (False, "domain_below_threshold"))
        return out

    def __getstate__(self):
        return {**self.__dict__, "_scorer": None}

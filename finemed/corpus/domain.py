"""The domain scorer as a datatrove step (blocks ``domain`` and ``domain_score``).

:class:`DomainScoreFilter` writes ``metadata["domain_score"]`` for every doc and, with ``keep_threshold``
set, drops docs below it with the reason ``domain_below_threshold``. Step ``domain`` scores and drops
(the classifier's tuned threshold unless ``pipeline.domain_threshold`` is set); ``domain_score`` only
scores, for a chain that runs quality filters before it drops by domain
(``[length, langid, domain_score, gopher, c4, fineweb, domain, ...]``).
"""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from finemed.corpus.registry import BlockContext, block
from finemed.corpus.scorers import load_scorer


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


@block("domain")
def domain_filter(ctx: BlockContext, batch_size: int = 256) -> DomainScoreFilter:
    clf, threshold = ctx.classifier()
    return DomainScoreFilter(clf, keep_threshold=threshold, batch_size=batch_size,
                             exclusion_writer=ctx.exclusion_writer("domain"))


@block("domain_score")
def domain_score(ctx: BlockContext, batch_size: int = 256) -> DomainScoreFilter:
    clf, _threshold = ctx.classifier()
    return DomainScoreFilter(clf, keep_threshold=None, batch_size=batch_size)

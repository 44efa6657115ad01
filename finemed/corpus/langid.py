"""Offline language ID as a datatrove filter (py3langid, normalised probabilities).

datatrove's own ``LanguageFilter`` downloads a fastText LID model at run time, which these machines
cannot do; py3langid ships its model in the wheel. Each doc gets ``metadata["lid_language"]`` (ISO 639-1)
and ``metadata["lid_score"]`` (the input's FineWeb2 ``language`` columns are left as they are); docs not in
``languages`` or under ``threshold`` are dropped with the reason ``lang_<code>`` or ``lang_low_score``.
Step ``langid`` reads ``pipeline.langid``.
"""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from finemed.corpus.registry import BlockContext, block, section


class PyLangIdFilter(BaseFilter):
    """Keep docs whose py3langid language is in ``languages`` with probability ≥ ``threshold``."""

    name = "🌐 py3langid"

    def __init__(self, languages: tuple[str, ...] = ("de",), threshold: float = 0.65,
                 max_chars: int = 1000, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer)
        self.languages = tuple(languages)
        self.threshold = threshold
        self.max_chars = max_chars
        self._identifier = None

    @property
    def identifier(self):
        if self._identifier is None:
            import py3langid.langid as L

            self._identifier = L.LanguageIdentifier.from_model_file(L.MODEL_FILE, norm_probs=True)
        return self._identifier

    def classify(self, text: str) -> tuple[str, float]:
        lang, score = self.identifier.classify(text[: self.max_chars])
        return lang, float(score)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lang, score = self.classify(doc.text)
        doc.metadata["lid_language"] = lang
        doc.metadata["lid_score"] = round(score, 4)
        if lang not in self.languages:
            return False, f"lang_{lang}"
        if score < self.threshold:
            return False, "lang_low_score"
        return True

    def __getstate__(self):  # the identifier is rebuilt in each worker
        state = self.__dict__.copy()
        state["_identifier"] = None
        return state


@block("langid")
def langid_filter(ctx: BlockContext, **params) -> PyLangIdFilter | None:
    cfg = section(ctx.pipeline.langid, params)
    if not cfg.enabled:
        return None
    return PyLangIdFilter(tuple(cfg.languages), cfg.threshold, exclusion_writer=ctx.exclusion_writer("langid"))

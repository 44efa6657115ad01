"""Domain-aware quality filtering: datatrove's Gopher, C4 and FineWeb filters, strict or relaxed per doc.

:class:`DomainAwareFilter` wraps a strict (``base`` settings) and a relaxed (``base`` + ``relaxed``) instance of
one datatrove filter and picks by ``metadata["domain_score"]`` (see :mod:`finemed.corpus.quality` for the
settings and why). When the relaxed one keeps a doc the strict one would drop, it counts
``rescued_<reason>`` (with ``count_rescued``, off by default since it runs the filter twice;
``quality-report`` measures the same thing offline). Steps ``gopher``, ``c4`` and ``fineweb`` read
``pipeline.quality``; a step's params override its fields (e.g. ``- gopher: {relax_threshold: null}``).
"""

from __future__ import annotations

from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result

from finemed.core.config import ConfigError
from finemed.corpus.registry import BlockContext, block, section

FILTER_CLASSES = {"gopher": GopherQualityFilter, "c4": C4QualityFilter, "fineweb": FineWebQualityFilter}


def make_filter(kind: str, settings: dict[str, Any], language: str) -> BaseFilter:
    if kind not in FILTER_CLASSES:
        raise ConfigError(f"quality filter {kind!r} unknown; expected one of {', '.join(FILTER_CLASSES)}")
    return FILTER_CLASSES[kind](language=language, **settings)


class DomainAwareFilter(BaseFilter):
    """One datatrove quality filter with a strict and a relaxed instance, chosen by ``domain_score``."""

    def __init__(self, kind: str, base: dict[str, Any], relaxed: dict[str, Any] | None,
                 relax_threshold: float | None, language: str = "deu", exclusion_writer=None,
                 count_rescued: bool = True):
        super().__init__(exclusion_writer)
        self.kind = kind
        self.count_rescued = count_rescued
        self.strict = make_filter(kind, base, language)
        self.relaxed = make_filter(kind, {**base, **relaxed}, language) if relaxed is not None else None
        self.relax_threshold = relax_threshold

    def _reason(self, reason: str | None) -> str:
        reason = reason or "dropped"
        return reason if reason.startswith(self.kind) else f"{self.kind}_{reason}"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        score = doc.metadata.get("domain_score")
        use_relaxed = (self.relaxed is not None and self.relax_threshold is not None and score is not None
                       and float(score) >= self.relax_threshold)
        if not use_relaxed:
            ok, reason = get_filter_result(self.strict.filter(doc))
            return True if ok else (False, self._reason(reason))
        if self.count_rescued:  # C4 rewrites doc.text: check the strict verdict on a copy
            ok_strict, strict_reason = get_filter_result(self.strict.filter(Document(text=doc.text, id=doc.id)))
        ok, reason = get_filter_result(self.relaxed.filter(doc))
        if self.count_rescued and ok and not ok_strict:
            self.stat_update(f"rescued_{self._reason(strict_reason)}")
        return True if ok else (False, self._reason(reason))


class GopherDomainAware(DomainAwareFilter):
    name = "✅ quality: Gopher (domain-aware)"


class C4DomainAware(DomainAwareFilter):
    name = "✅ quality: C4 (domain-aware)"


class FineWebDomainAware(DomainAwareFilter):
    name = "✅ quality: FineWeb (domain-aware)"


AWARE_CLASSES = {"gopher": GopherDomainAware, "c4": C4DomainAware, "fineweb": FineWebDomainAware}


def quality_filter(kind: str, ctx: BlockContext, params: dict[str, Any]) -> DomainAwareFilter:
    """Step ``kind`` with the settings of ``pipeline.quality`` (``params`` override its fields)."""
    cfg = section(ctx.pipeline.quality, params)
    relaxed = cfg.relaxed.get(kind) if cfg.relax_threshold is not None else None
    return AWARE_CLASSES[kind](kind, cfg.base.get(kind, {}), relaxed, cfg.relax_threshold, cfg.language,
                               ctx.exclusion_writer(kind), cfg.count_rescued)


@block("gopher")
def gopher(ctx: BlockContext, **params) -> DomainAwareFilter:
    return quality_filter("gopher", ctx, params)


@block("c4")
def c4(ctx: BlockContext, **params) -> DomainAwareFilter:
    return quality_filter("c4", ctx, params)


@block("fineweb")
def fineweb(ctx: BlockContext, **params) -> DomainAwareFilter:
    return quality_filter("fineweb", ctx, params)

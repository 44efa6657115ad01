"""Domain-aware quality filtering: datatrove's Gopher, C4 and FineWeb filters with German settings,
relaxed for docs the domain scorer rates as in-domain.

Why not the defaults: measured on the dev input, GopherQualityFilter at its defaults keeps 0 of 727
German medical docs. Its stop-word rule uses English words, and its "≥ 80% of words contain a
letter" rule counts spaCy's punctuation tokens as words, which fails German prose (median 0.82) and
clinical text full of numbers, dates and doses. C4 drops interviews whose answers lack full stops,
and FineWeb's line-punctuation rule drops letters with many header lines.

Two settings layers, both plain keyword dicts for the datatrove classes (configurable in YAML):

- ``base``: German-tuned settings for every doc (German stop words, alpha-word ratio 0.7);
- ``relaxed``: used instead of ``base`` when ``metadata["domain_score"] >= relax_threshold``:
  relaxes only the rules that clinical text trips (alpha ratio, minimum length, terminal punctuation,
  sentence count, line punctuation) and keeps the ones that catch junk (lorem ipsum, curly brackets,
  javascript/policy lines, repetition, hashes, ellipses, bullets).

:class:`finemed.corpus.quality_filters.DomainAwareFilter` applies them (steps ``gopher``, ``c4``,
``fineweb``); this module holds only the settings, so configs validate without importing datatrove.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from finemed.core.config import StageConfig

GERMAN_STOP_WORDS = ["der", "die", "das", "und", "ist", "zu", "in", "den", "mit", "nicht", "von", "sie",
                     "es", "ein", "eine", "auf", "sich", "dem", "des", "für", "im", "auch", "wird",
                     "wurde", "bei", "ich", "er", "wir", "an", "als"]

QUALITY_KINDS = ("gopher", "c4", "fineweb")

GERMAN_BASE: dict[str, dict[str, Any]] = {
    "gopher": {"stop_words": GERMAN_STOP_WORDS, "max_non_alpha_words_ratio": 0.7},
    "c4": {},
    "fineweb": {},
}
DOMAIN_RELAXED: dict[str, dict[str, Any]] = {
    "gopher": {"min_doc_words": 20, "max_non_alpha_words_ratio": 0.45, "max_avg_word_length": 14},
    "c4": {"filter_no_terminal_punct": False, "min_num_sentences": 2, "min_words_per_line": 1},
    "fineweb": {"line_punct_thr": 0.0, "short_line_thr": 0.9, "char_duplicates_ratio": 0.1,
                "new_line_ratio": 0.5},
}


class QualityConfig(StageConfig):
    """The settings of the datatrove quality filters, and when to relax them (the steps list says which run)."""

    language: str = "deu"
    base: dict[str, dict[str, Any]] = Field(default_factory=lambda: {k: dict(v) for k, v in GERMAN_BASE.items()})
    relaxed: dict[str, dict[str, Any]] = Field(default_factory=lambda: {k: dict(v) for k, v in DOMAIN_RELAXED.items()})
    relax_threshold: float | None = 0.5  # None: never relax (German base settings for all docs)
    count_rescued: bool = False  # also run the strict settings on relaxed docs, to count rescues (2x cost)

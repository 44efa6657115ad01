"""The corpus chain's config: an ordered ``steps`` list of registered blocks, plus each block's settings.

    steps: [length, langid, domain, gopher, c4, fineweb, decont, minhash, pii]   # the default, FineMed-de's order

Each item is a block name (:mod:`finemed.corpus.registry`) or ``{name: {param: value}}``. The domain filter
runs before quality filtering by default: at FineWeb2 scale ~90% of docs leave at the cheapest step, so
quality filters, decontamination (``decont``), MinHash and PII only see in-domain docs (``domain_score`` + a
later ``domain`` reverses that). ``minhash`` is where the chain is cut for MinHash dedup (see
:mod:`finemed.corpus.chain`). A user block lives in any module listed under ``imports``. This module imports
no datatrove, so configs and recipes validate fast.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from finemed.core.config import StageConfig
from finemed.corpus.decont import DecontConfig
from finemed.corpus.pii import PiiConfig
from finemed.corpus.quality import QualityConfig
from finemed.corpus.registry import MINHASH, import_modules, known, parse_step

DEFAULT_STEPS = ["length", "langid", "domain", "gopher", "c4", "fineweb", "decont", MINHASH, "pii"]


class LangIdConfig(StageConfig):
    enabled: bool = True
    languages: list[str] = Field(default_factory=lambda: ["de"])
    threshold: float = Field(0.65, ge=0.0, le=1.0)


class DedupConfig(StageConfig):
    enabled: bool = True
    n_grams: int = Field(5, ge=1)
    num_buckets: int = Field(14, ge=1)
    hashes_per_bucket: int = Field(8, ge=1)
    language: str = "deu"


class PipelineConfig(StageConfig):
    imports: list[str] = Field(default_factory=list)  # modules that register user blocks (@block("name"))
    steps: list[str | dict[str, dict[str, Any] | None]] = Field(default_factory=lambda: list(DEFAULT_STEPS))
    text_key: str = "text"
    id_key: str = "id"
    max_doc_chars: int = Field(1_000_000, ge=1)  # step length
    langid: LangIdConfig = Field(default_factory=LangIdConfig)  # step langid
    domain_threshold: float | None = Field(None, ge=0.0, le=1.0)  # steps domain; None: the classifier's threshold
    quality: QualityConfig = Field(default_factory=QualityConfig)  # steps gopher, c4, fineweb
    decont: DecontConfig = Field(default_factory=DecontConfig)  # step decont (benchmark n-gram overlap)
    dedup: DedupConfig = Field(default_factory=DedupConfig)  # step minhash
    pii: PiiConfig = Field(default_factory=PiiConfig)  # step pii
    dropped_samples_per_reason: int = Field(5, ge=0)

    @model_validator(mode="after")
    def _known_steps(self) -> "PipelineConfig":
        import_modules(self.imports)
        names = [parse_step(s)[0] for s in self.steps]
        unknown = [n for n in names if n not in known()]
        if unknown:
            raise ValueError(f"unknown corpus step {unknown[0]!r}; known steps: {', '.join(known())}")
        if names.count(MINHASH) > 1:
            raise ValueError(f"step {MINHASH!r} may appear once")
        return self

    def parsed_steps(self) -> list[tuple[str, dict[str, Any]]]:
        return [parse_step(s) for s in self.steps]

    def needs_classifier(self) -> bool:
        return any(n in ("domain", "domain_score") for n, _ in self.parsed_steps())

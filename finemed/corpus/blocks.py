"""Small datatrove glue steps: a length guard, PII as a step, a sampling exclusion writer and the writers.

- :class:`DocLengthFilter` drops docs over ``max_chars`` (reason ``too_long``) before any
  tokenizer sees them: spaCy refuses texts over 1M characters and a 5 MB doc would stall a worker.
- :class:`SampledJsonlWriter` is an exclusion writer that keeps only the first ``per_reason`` dropped
  docs per reason and rank, so "samples of the dropped docs" cost no disk at FineWeb2 scale.
- :func:`fineweb2_writer` writes parquet shards in the FineWeb2 schema (flat columns) plus
  ``domain_score``, ``lid_language``, ``lid_score``, ``pii_count`` and ``pii_labels``; every other
  metadata key (e.g. the dev input's ``source``) goes into one JSON ``meta`` column, so the schema
  is fixed whatever the input carries.

Steps ``length`` (``pipeline.max_doc_chars``) and ``pii`` (``pipeline.pii``; :mod:`finemed.corpus.pii`).
"""

from __future__ import annotations

import json
from collections import Counter

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

from finemed.corpus.pii import PiiConfig, redact
from finemed.corpus.registry import BlockContext, block, section

FINEWEB2_STR = ("dump", "url", "date", "file_path", "language", "language_script", "top_langs")
FINEWEB2_FLOAT = ("language_score",)
FINEWEB2_INT = ("minhash_cluster_size",)


class DocLengthFilter(BaseFilter):
    name = "📏 length guard"

    def __init__(self, max_chars: int = 1_000_000, min_chars: int = 1, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.max_chars = max_chars
        self.min_chars = min_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        n = len(doc.text)
        if n > self.max_chars:
            return False, "too_long"
        if n < self.min_chars or not doc.text.strip():
            return False, "empty"
        return True


@block("length")
def length_guard(ctx: BlockContext, max_chars: int | None = None) -> DocLengthFilter:
    return DocLengthFilter(max_chars or ctx.pipeline.max_doc_chars, exclusion_writer=ctx.exclusion_writer("length"))


class PiiRedactor(PipelineStep):
    """Replace PII in ``doc.text`` by typed placeholders; record ``pii_count`` and ``pii_labels``."""

    name = "🔒 PII de-identification"
    type = "🔏 - PII"

    def __init__(self, cfg: PiiConfig | None = None):
        super().__init__()
        self.cfg = cfg or PiiConfig()

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            with self.track_time():
                doc.text, spans = redact(doc.text, self.cfg)
            counts = Counter(sp.label for sp in spans)
            doc.metadata["pii_count"] = len(spans)
            doc.metadata["pii_labels"] = dict(counts)
            self.stat_update("docs")
            self.stat_update("docs_with_pii", value=int(bool(spans)))
            for label, n in counts.items():
                self.stat_update(f"pii_{label}", value=n)
            yield doc


@block("pii")
def pii_redactor(ctx: BlockContext, **params) -> PiiRedactor | None:
    cfg = section(ctx.pipeline.pii, params)
    return PiiRedactor(cfg) if cfg.enabled else None


class SampledJsonlWriter(JsonlWriter):
    """Exclusion writer keeping the first ``per_reason`` docs per drop reason (per rank)."""

    def __init__(self, output_folder: str, per_reason: int = 5, max_chars: int = 2000):
        super().__init__(output_folder, output_filename="${rank}.jsonl", compression=None)
        self.per_reason = per_reason
        self.max_chars = max_chars
        self._seen: Counter = Counter()

    def write(self, document: Document, rank: int = 0, **kwargs):
        reason = document.metadata.get("filter_reason", "unknown")
        self._seen[reason] += 1
        if self._seen[reason] > self.per_reason:
            return
        small = Document(text=document.text[: self.max_chars], id=document.id,
                         metadata={k: v for k, v in document.metadata.items() if k in (
                             "filter_reason", "domain_score", "lid_language", "lid_score", "source", "url")})
        super().write(small, rank, **kwargs)


def _fineweb2_adapter(self, document: Document) -> dict:
    md = dict(document.metadata)
    row: dict = {"text": document.text, "id": str(document.id)}
    for k in FINEWEB2_STR:
        v = md.pop(k, None)
        row[k] = None if v is None else (v if isinstance(v, str) else json.dumps(v))
    for k in FINEWEB2_FLOAT:
        v = md.pop(k, None)
        row[k] = None if v is None else float(v)
    for k in FINEWEB2_INT:
        v = md.pop(k, None)
        row[k] = None if v is None else int(v)
    row["domain_score"] = float(md.pop("domain_score")) if md.get("domain_score") is not None else None
    row["lid_language"] = md.pop("lid_language", None)
    row["lid_score"] = float(md.pop("lid_score")) if md.get("lid_score") is not None else None
    row["pii_count"] = int(md.pop("pii_count", 0) or 0)
    row["pii_labels"] = json.dumps(md.pop("pii_labels", {}) or {}, sort_keys=True)
    row["meta"] = json.dumps(md, default=str, ensure_ascii=False, sort_keys=True)
    return row


def fineweb2_schema():
    import pyarrow as pa

    fields = [("text", pa.string()), ("id", pa.string())]
    fields += [(k, pa.string()) for k in FINEWEB2_STR] + [(k, pa.float64()) for k in FINEWEB2_FLOAT]
    fields += [(k, pa.int64()) for k in FINEWEB2_INT]
    fields += [("domain_score", pa.float64()), ("lid_language", pa.string()), ("lid_score", pa.float64()),
               ("pii_count", pa.int64()), ("pii_labels", pa.string()), ("meta", pa.string())]
    return pa.schema(fields)


def fineweb2_writer(output_folder: str, filename: str = "${rank}.parquet") -> ParquetWriter:
    return ParquetWriter(output_folder, output_filename=filename, adapter=_fineweb2_adapter,
                         schema=fineweb2_schema())


def intermediate_writer(folder: str) -> JsonlWriter:
    """jsonl between the chain's stages: schema-free, whatever metadata the input carries."""
    return JsonlWriter(folder, output_filename="${rank}.jsonl", compression=None)

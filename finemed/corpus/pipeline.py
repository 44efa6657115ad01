"""The FineMed-de pipeline as datatrove stages (each a list of PipelineSteps for one executor).

    filter : read → length guard → py3langid → domain score (+ threshold) → quality (domain-aware)
             → work/filtered/<rank>.jsonl → MinHash signatures (same pass: no second read, pool or spaCy load)
    minhash: buckets → clusters (datatrove's multi-stage MinHash)
    final  : read work/filtered/<rank>.jsonl → MinHash filter → PII de-identification → FineWeb2 parquet in output/

MinHash's filter drops docs by their index in the rank's stream, so the final stage's rank r reads exactly
the file that filter rank r wrote (:class:`RankJsonlReader`), never a re-sharded listing.

The domain filter runs before quality filtering (configurable): at FineWeb2 scale ~90% of docs leave
at the cheapest step, so quality filters, MinHash and PII only see in-domain docs.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from pydantic import Field

from finemed.config import StageConfig
from finemed.corpus.blocks import DocLengthFilter, SampledJsonlWriter, fineweb2_writer
from finemed.corpus.domain import DomainScoreFilter
from finemed.corpus.langid import PyLangIdFilter
from finemed.corpus.pii import PiiConfig, PiiRedactor
from finemed.corpus.quality import QualityConfig, quality_steps
from finemed.corpus.readers import make_reader


class LangIdConfig(StageConfig):
    enabled: bool = True
    languages: list[str] = Field(default_factory=lambda: ["de"])
    threshold: float = 0.65


class DedupConfig(StageConfig):
    enabled: bool = True
    n_grams: int = 5
    num_buckets: int = 14
    hashes_per_bucket: int = 8
    language: str = "deu"


class PipelineConfig(StageConfig):
    text_key: str = "text"
    id_key: str = "id"
    max_doc_chars: int = 1_000_000
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    domain_threshold: float | None = None  # None: the classifier's tuned threshold
    domain_first: bool = True  # domain filter before quality filters (cheaper at scale)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    dropped_samples_per_reason: int = 5


def _sampler(work: Path, name: str, cfg: PipelineConfig):
    return SampledJsonlWriter(str(work / "dropped" / name), per_reason=cfg.dropped_samples_per_reason)


def build_stages(input_path: str, run_dir: Path, classifier_dir: str, threshold: float,
                 cfg: PipelineConfig) -> list[tuple[str, list, int | None]]:
    """``[(stage_name, steps, tasks)]``; ``tasks=None`` means one task per input file."""
    work = run_dir / "work"
    filtered = str(work / "filtered")
    pre = [make_reader(input_path, text_key=cfg.text_key, id_key=cfg.id_key),
           DocLengthFilter(cfg.max_doc_chars, exclusion_writer=_sampler(work, "length", cfg))]
    if cfg.langid.enabled:
        pre.append(PyLangIdFilter(tuple(cfg.langid.languages), cfg.langid.threshold,
                                  exclusion_writer=_sampler(work, "langid", cfg)))
    domain = DomainScoreFilter(classifier_dir, keep_threshold=threshold, exclusion_writer=_sampler(work, "domain", cfg))
    quality = quality_steps(cfg.quality, {k: _sampler(work, f"quality_{k}", cfg) for k in cfg.quality.enabled})
    if not cfg.domain_first:  # score first (quality needs the score), drop by domain after quality
        scorer = DomainScoreFilter(classifier_dir, keep_threshold=None)
        mid = [scorer, *quality, domain]
    else:
        mid = [domain, *quality]
    filter_steps = pre + mid + [_intermediate_writer(filtered)]
    stages: list[tuple[str, list, int | None]] = [("filter", filter_steps, None)]
    final: list = [RankJsonlReader(filtered)]
    if cfg.dedup.enabled:
        mh = MinhashConfig(n_grams=cfg.dedup.n_grams, num_buckets=cfg.dedup.num_buckets,
                           hashes_per_bucket=cfg.dedup.hashes_per_bucket)
        sigs, buckets, clusters = str(work / "minhash/signatures"), str(work / "minhash/buckets"), str(work / "minhash/clusters")
        filter_steps.append(MinhashDedupSignature(sigs, config=mh, language=cfg.dedup.language))
        stages += [
            ("minhash_buckets", [MinhashDedupBuckets(sigs, buckets, config=mh)], cfg.dedup.num_buckets),
            ("minhash_cluster", [MinhashDedupCluster(buckets, clusters, config=mh)], 1),
        ]
        final.append(MinhashDedupFilter(clusters, exclusion_writer=_sampler(work, "minhash", cfg)))
    if cfg.pii.enabled:
        final.append(PiiRedactor(cfg.pii))
    final.append(fineweb2_writer(str(run_dir / "output")))
    stages.append(("final", final, None))
    return stages


def _intermediate_writer(folder: str):  # jsonl: schema-free, whatever metadata the input carries
    from datatrove.pipeline.writers import JsonlWriter

    return JsonlWriter(folder, output_filename="${rank}.jsonl", compression=None)


class RankJsonlReader(JsonlReader):
    """Reads ``<folder>/<rank>.jsonl`` of a stage run with the same task count (nothing if that rank kept no doc)."""

    name = "🐿 Jsonl (this rank's file)"

    def __init__(self, folder: str):
        super().__init__(folder, compression=None)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        path = f"{rank:05d}.jsonl"
        if self.data_folder.exists(path):
            yield from self.read_files_shard([path])


def count_input_files(input_path: str) -> int:
    p = Path(input_path)
    if p.is_file():
        return 1
    if p.is_dir():
        return max(1, sum(1 for x in p.rglob("*") if x.is_file() and (x.name.endswith(".parquet") or ".json" in x.name)))
    return 1

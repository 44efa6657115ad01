"""The FineMed-de chain as datatrove stages (each a list of PipelineSteps for one executor).

With the default steps::

    filter : read → length → langid → domain → gopher → c4 → fineweb → decont → work/filtered/<rank>.jsonl
             → MinHash signatures (same pass: no second read, pool or spaCy load)
    minhash: buckets → clusters (datatrove's multi-stage MinHash)
    final  : read work/filtered/<rank>.jsonl → MinHash filter → pii → FineWeb2 parquet in output/

MinHash dedup is not a block but the place where the step list is cut: it needs all docs of the filter
stage written (signatures), two stages of its own (buckets, clusters) and then a second read of the
filtered docs, so the steps before ``minhash`` run in the filter stage and the steps after it in the final
stage. Without ``minhash`` in the list (or with ``dedup.enabled: false``) no dedup runs. MinHash's filter
drops docs by their index in the rank's stream, so the final stage's rank r reads exactly the file that
filter rank r wrote (:class:`RankJsonlReader`), never a re-sharded listing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from finemed.corpus.blocks import SampledJsonlWriter, fineweb2_writer, intermediate_writer
from finemed.corpus.pipeline import PipelineConfig
from finemed.corpus.readers import RankJsonlReader, make_reader
from finemed.corpus.registry import MINHASH, BlockContext, build


def build_stages(input_path: str, run_dir: Path, cfg: PipelineConfig,
                 classifier: Callable[[], tuple[str, float]],
                 storage_options: dict | None = None) -> list[tuple[str, list, int | None]]:
    """``[(stage_name, steps, tasks)]``; ``tasks=None`` means one task per input file.

    ``classifier() -> (dir, threshold)`` is called only when a step needs the domain classifier;
    ``storage_options`` go to fsspec for an input URL (e.g. an S3 ``endpoint_url``).
    """
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig

    work = run_dir / "work"

    def sampler(name: str) -> SampledJsonlWriter:
        return SampledJsonlWriter(str(work / "dropped" / name), per_reason=cfg.dropped_samples_per_reason)

    ctx = BlockContext(pipeline=cfg, run_dir=run_dir, classifier=classifier, exclusion_writer=sampler)
    steps = cfg.parsed_steps()
    cut = next((i for i, (name, _) in enumerate(steps) if name == MINHASH), len(steps))
    before = [s for name, params in steps[:cut] for s in build(name, params, ctx)]
    after = [s for name, params in steps[cut + 1:] for s in build(name, params, ctx)]
    filtered = str(work / "filtered")
    filter_steps = [make_reader(input_path, text_key=cfg.text_key, id_key=cfg.id_key,
                                storage_options=storage_options), *before,
                    intermediate_writer(filtered)]
    stages: list[tuple[str, list, int | None]] = [("filter", filter_steps, None)]
    final: list = [RankJsonlReader(filtered)]
    if cut < len(steps) and cfg.dedup.enabled:
        mh = MinhashConfig(n_grams=cfg.dedup.n_grams, num_buckets=cfg.dedup.num_buckets,
                           hashes_per_bucket=cfg.dedup.hashes_per_bucket)
        sigs, buckets, clusters = (str(work / "minhash" / d) for d in ("signatures", "buckets", "clusters"))
        filter_steps.append(MinhashDedupSignature(sigs, config=mh, language=cfg.dedup.language))
        stages += [
            ("minhash_buckets", [MinhashDedupBuckets(sigs, buckets, config=mh)], cfg.dedup.num_buckets),
            ("minhash_cluster", [MinhashDedupCluster(buckets, clusters, config=mh)], 1),
        ]
        final.append(MinhashDedupFilter(clusters, exclusion_writer=sampler(MINHASH)))
    final += [*after, fineweb2_writer(str(run_dir / "output"))]
    stages.append(("final", final, None))
    return stages

"""Corpus benchmark: the full FineMed pipeline vs a datatrove-only chain on the same ~20k-doc input.

Both run on datatrove's local executor with the same workers. The datatrove-only chain is the same
reader, Gopher, C4 and FineWeb filters (German word splitting and stop words) and a parquet writer. Ours adds LID,
the domain scorer, domain-aware quality settings, MinHash (4 stages), PII and stats. Prints docs/s of
both, fastText scoring docs/s on one core, and ``ratio=<ours/datatrove>`` last.

    python benchmarks/bench_corpus.py [--docs 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def make_input(out: Path, n_docs: int, shards: int) -> int:
    """The dev input repeated with a distinct trailing line per copy, up to ``n_docs`` docs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from finemed.corpus.sample_input import build_rows

    base = build_rows()
    rows = []
    k = 0
    while len(rows) < n_docs:
        for r in base:
            if len(rows) >= n_docs:
                break
            rows.append({**r, "id": f"{r['id']}-c{k}", "text": r["text"] + f"\n(Archivkopie {k})"})
        k += 1
    out.mkdir(parents=True)
    for s in range(shards):
        pq.write_table(pa.Table.from_pylist(rows[s::shards]), out / f"part-{s:05d}.parquet")
    return len(rows)


def run_datatrove_only(inp: Path, out: Path, workers: int, tasks: int) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    from finemed.corpus.quality import GERMAN_BASE

    # German settings (German stop words): at its English defaults Gopher drops ~99% of German docs,
    # which would leave C4 and FineWeb almost nothing to do; nobody would run that on German text.
    steps = [ParquetReader(str(inp), glob_pattern="*.parquet"), GopherQualityFilter(language="deu", **GERMAN_BASE["gopher"]),
             C4QualityFilter(language="deu", **GERMAN_BASE["c4"]), FineWebQualityFilter(language="deu", **GERMAN_BASE["fineweb"]),
             ParquetWriter(str(out / "output"), output_filename="${rank}.parquet")]
    t = time.perf_counter()
    LocalPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(out / "logs")).run()
    return time.perf_counter() - t


def run_ours(inp: Path, out: Path, clf: Path, workers: int) -> tuple[float, dict]:
    from finemed.artifacts import read_json
    from finemed.corpus.build import CorpusBuildConfig, run

    t = time.perf_counter()
    run(CorpusBuildConfig(input=str(inp), classifier=str(clf), executor={"workers": workers}), out)
    return time.perf_counter() - t, read_json(out / "stats.json")


def fasttext_rate(clf: Path, inp: Path) -> float:
    from finemed.corpus.rows import read_rows
    from finemed.corpus.scorers import load_scorer

    texts = [r["text"] for r in read_rows(inp, columns=["text"])][:10000]
    scorer = load_scorer(clf)
    scorer.score(texts[:10])
    t = time.perf_counter()
    scorer.score(texts)
    return len(texts) / (time.perf_counter() - t)


def cascade_share(clf: Path, inp: Path, prefilter_recall: float = 0.98) -> tuple[float, float]:
    """The fastText prefilter threshold keeping ``prefilter_recall`` of the dev-input valid positives, and
    the share of the benchmark docs that pass it (= that a cascade would send to the transformer)."""
    import numpy as np

    from finemed.corpus.classifier_eval import recall_threshold, split_by_source
    from finemed.corpus.rows import read_rows
    from finemed.corpus.sample_input import default_dev_input
    from finemed.corpus.scorers import load_scorer

    scorer = load_scorer(clf)
    dev = [r for r in read_rows(default_dev_input()) if r.get("medical") in (0, 1)]
    valid = split_by_source(dev)["valid"]
    t_pre = recall_threshold(np.array([r["medical"] for r in valid]), scorer.score([r["text"] for r in valid]),
                             prefilter_recall)
    scores = scorer.score([r["text"] for r in read_rows(inp, columns=["text"])])
    return t_pre, float((scores >= t_pre).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=4)
    args = ap.parse_args()
    from finemed.corpus.train_classifier import cached_default_classifier

    clf = cached_default_classifier()
    tmp = Path(tempfile.mkdtemp(prefix="bench_corpus_"))
    try:
        n = make_input(tmp / "input", args.docs, args.shards)
        t_dt = run_datatrove_only(tmp / "input", tmp / "dt", args.workers, args.shards)
        t_ours, stats = run_ours(tmp / "input", tmp / "ours", clf, args.workers)
        ft = fasttext_rate(clf, tmp / "input")
        print(f"input docs: {n}, workers: {args.workers}, tasks: {args.shards}")
        print(f"datatrove-only (reader+Gopher+C4+FineWeb+writer): {t_dt:.1f}s = {n / t_dt:.0f} docs/s")
        print(f"finemed full (LID+domain+quality+MinHash x4+PII+writer+stats): {t_ours:.1f}s = {n / t_ours:.0f} docs/s "
              f"(kept {stats['totals']['docs']})")
        print("finemed stage seconds: " + ", ".join(f"{k}={v}" for k, v in stats.get("stage_seconds", {}).items()))
        print(f"fastText scoring: {ft:.0f} docs/s on one core")
        t_pre, share = cascade_share(clf, tmp / "input")
        print(f"cascade share: {share:.3f} of docs pass the fastText prefilter (t={t_pre:.3f}, 98% valid recall) "
              f"and would reach the transformer")
        print(f"ratio={(n / t_ours) / (n / t_dt):.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

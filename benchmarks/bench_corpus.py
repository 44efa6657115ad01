"""Corpus benchmark, like for like: our chain vs the same datatrove blocks in FineWeb's order, same input.

Main line: both sides run reader → Gopher → C4 → FineWeb (German settings) → the domain filter (the same
fastText classifier and threshold) → parquet, on datatrove's local executor with the same workers and tasks.
Ours is ``corpus build`` with ``pipeline.steps: [gopher, c4, fineweb, domain]`` (quality before domain, as
FineWeb filters; domain-aware relaxing is off since no doc has a score yet), so it pays for what it adds to
the same work: the counted-skip reader, the two-stage layout (jsonl between stages), sampled exclusion
writers and ``stats.json``. The output id sets must be identical (asserted). Each side runs in a fresh
process per round, the order alternates, and min/median/max of ``ours/peer`` docs/s are printed, the
median last as ``ratio=<x>``.

Second line, different work: our full default chain (LID, domain first, quality, decont, MinHash, PII)
vs the datatrove-only quality chain without a domain filter, once.

    python benchmarks/bench_corpus.py [--docs 3000] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIKE_FOR_LIKE_STEPS = ["gopher", "c4", "fineweb", "domain"]


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


def peer_steps(inp: Path, out: Path, clf: Path | None):
    """datatrove's reader, Gopher/C4/FineWeb with our German settings, [the domain filter], its parquet writer."""
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    from finemed.corpus.domain import DomainScoreFilter
    from finemed.corpus.quality import GERMAN_BASE
    from finemed.corpus.scorers import classifier_threshold

    # German settings (German stop words): at its English defaults Gopher drops ~99% of German docs
    steps = [ParquetReader(str(inp), glob_pattern="*.parquet"),
             GopherQualityFilter(language="deu", **GERMAN_BASE["gopher"]),
             C4QualityFilter(language="deu", **GERMAN_BASE["c4"]),
             FineWebQualityFilter(language="deu", **GERMAN_BASE["fineweb"])]
    if clf is not None:
        steps.append(DomainScoreFilter(str(clf), keep_threshold=classifier_threshold(str(clf))))
    return [*steps, ParquetWriter(str(out / "output"), output_filename="${rank}.parquet")]


def run_peer(inp: Path, out: Path, clf: Path | None, workers: int, tasks: int) -> float:
    from datatrove.executor import LocalPipelineExecutor

    steps = peer_steps(inp, out, clf)
    t = time.perf_counter()
    LocalPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(out / "logs")).run()
    return time.perf_counter() - t


def run_ours(inp: Path, out: Path, clf: Path, workers: int, steps: list[str] | None) -> float:
    from finemed.corpus.build import CorpusBuildConfig, run

    pipeline = {"steps": steps, "quality": {"relax_threshold": None}} if steps else {}
    cfg = CorpusBuildConfig(input=str(inp), classifier=str(clf), tokenizer=None, pipeline=pipeline,
                            executor={"workers": workers})
    t = time.perf_counter()
    run(cfg, out)
    return time.perf_counter() - t


def output_ids(out: Path) -> list[str]:
    import pyarrow.parquet as pq

    return sorted(i for f in sorted((out / "output").glob("*.parquet"))
                  for i in pq.read_table(f, columns=["id"]).column("id").to_pylist())


def child(args) -> None:
    """One side, one round, in this fresh process: print {"seconds", "ids"} as JSON on the last line."""
    inp, out, clf = Path(args.input), Path(args.out), Path(args.clf)
    if args.side == "ours":
        seconds = run_ours(inp, out, clf, args.workers, LIKE_FOR_LIKE_STEPS)
    elif args.side == "peer":
        seconds = run_peer(inp, out, clf, args.workers, args.shards)
    elif args.side == "ours-full":
        seconds = run_ours(inp, out, clf, args.workers, None)
    else:
        seconds = run_peer(inp, out, None, args.workers, args.shards)
    print(json.dumps({"seconds": seconds, "ids": output_ids(out)}))


def spawn(side: str, inp: Path, out: Path, clf: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--side", side, "--input", str(inp), "--out", str(out), "--clf", str(clf),
           "--workers", str(args.workers), "--shards", str(args.shards)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{side} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--side", choices=["ours", "peer", "ours-full", "peer-quality"], help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--clf", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        return child(args)
    from finemed.corpus.train_classifier import cached_default_classifier

    clf = cached_default_classifier()
    tmp = Path(tempfile.mkdtemp(prefix="bench_corpus_"))
    try:
        n = make_input(tmp / "input", args.docs, args.shards)
        print(f"input docs: {n}, workers: {args.workers}, tasks: {args.shards}, rounds: {args.rounds}")
        ratios = []
        for r in range(args.rounds):
            order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
            res = {side: spawn(side, tmp / "input", tmp / f"{side}{r}", clf, args) for side in order}
            assert res["ours"]["ids"] == res["peer"]["ids"], "output id sets differ: not the same work"
            ratios.append(res["peer"]["seconds"] / res["ours"]["seconds"])  # = ours docs/s / peer docs/s
            print(f"round {r} ({' then '.join(order)}): ours {res['ours']['seconds']:.1f}s = "
                  f"{n / res['ours']['seconds']:.0f} docs/s, peer {res['peer']['seconds']:.1f}s = "
                  f"{n / res['peer']['seconds']:.0f} docs/s, same {len(res['ours']['ids'])} output ids")
        full = spawn("ours-full", tmp / "input", tmp / "full", clf, args)
        dt = spawn("peer-quality", tmp / "input", tmp / "dtq", clf, args)
        print(f"different work (once): finemed full default chain (LID+domain+quality+decont+MinHash+PII) "
              f"{n / full['seconds']:.0f} docs/s, kept {len(full['ids'])}; datatrove-only Gopher+C4+FineWeb "
              f"{n / dt['seconds']:.0f} docs/s, kept {len(dt['ids'])}; ratio {dt['seconds'] / full['seconds']:.3f}")
        print(f"fastText scoring: {fasttext_rate(clf, tmp / 'input'):.0f} docs/s on one core")
        t_pre, share = cascade_share(clf, tmp / "input")
        print(f"cascade share: {share:.3f} of docs pass the fastText prefilter (t={t_pre:.3f}, 98% valid recall)")
        print(f"like-for-like ours/peer docs/s: min={min(ratios):.3f} median={statistics.median(ratios):.3f} "
              f"max={max(ratios):.3f}")
        print(f"ratio={statistics.median(ratios):.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

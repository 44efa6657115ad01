"""``benchmarks/bench_corpus.py`` helpers: per-block seconds from datatrove's stats, CPU time of a process tree."""

from __future__ import annotations

import json
import sys

import bench_corpus as B  # benchmarks/ (tests/benchmarks/conftest.py)


def _blk(name: str, seconds: float) -> dict:
    return {"name": name, "time_stats": {"total": seconds}}


def test_block_seconds_sums_merged_stats_of_every_stage_and_skips_per_task_copies(tmp_path):
    ours = tmp_path / "ours" / "logs"
    (ours / "filter" / "stats").mkdir(parents=True)
    (ours / "final").mkdir(parents=True)
    (ours / "filter" / "stats.json").write_text(json.dumps([
        _blk("📖 - READER: 📒 Parquet (counted skips)", 0.5),
        _blk("🔻 - FILTER: ✅ quality: Gopher (domain-aware)", 3),
        _blk("🔻 - FILTER: ✅ quality: C4 (domain-aware)", 2),
        _blk("🔻 - FILTER: ✅ quality: FineWeb (domain-aware)", 1),
        _blk("🔻 - FILTER: 🩺 domain score", 0.25), _blk("💽 - WRITER: 🐿 Jsonl", 0.1)]))
    (ours / "filter" / "stats" / "00000.json").write_text(json.dumps([_blk("🔻 - FILTER: 🩺 domain score", 99)]))
    (ours / "final" / "stats.json").write_text(json.dumps([_blk("📖 - READER: 🐿 Jsonl (this rank's file)", 0.5),
                                                            _blk("💽 - WRITER: 📒 Parquet", 0.4)]))
    assert B.block_seconds(tmp_path / "ours") == {"reader": 1.0, "gopher": 3.0, "c4": 2.0, "fineweb": 1.0,
                                                  "domain": 0.25, "writers": 0.5}
    peer = tmp_path / "peer" / "logs"
    peer.mkdir(parents=True)
    (peer / "stats.json").write_text(json.dumps([_blk("🔻 - FILTER: 🥇 Gopher Quality", 4),
                                                 _blk("🔻 - FILTER: ⛰ C4 Quality", 1),
                                                 _blk("💽 - WRITER: 📒 Parquet", 2)]))
    assert B.block_seconds(tmp_path / "peer")["gopher"] == 4.0 and B.block_seconds(tmp_path / "peer")["writers"] == 2.0


def test_tree_cpu_sees_a_pool_that_wait4_cannot(tmp_path):
    script = tmp_path / "pool.py"  # a file: forkserver workers import __main__ to find f
    script.write_text("import multiprocessing as mp, time\n"
                      "def f(_):\n    t = time.process_time()\n    while time.process_time() - t < 0.3: pass\n"
                      "if __name__ == '__main__':\n"
                      "    with mp.get_context('forkserver').Pool(2) as p: p.map(f, [0, 1])\n")
    with B.TreeCpu(interval=0.05) as cpu:
        run = B.fresh_process([sys.executable, str(script)], timeout_s=120)
    assert cpu.seconds >= 0.45  # two workers x 0.3 s, polled
    assert run.cpu_s < 0.45  # wait4 on the child misses its forkserver's workers

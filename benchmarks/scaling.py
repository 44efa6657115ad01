"""Cost curves: how each stage's wall time and peak memory grow with its work.

Every stage runs on inputs growing by a factor of 4, each point in a FRESH child process (this file run as
``--child JOB.json``: it calls ``finemed.core.stages.run_stage(kind, cfg, run_dir)`` or, for a step that is not a
stage, the function itself). The parent measures the child's wall time and its peak RSS (``os.wait4``
``ru_maxrss``: the largest single process among the child and its waited-for descendants, e.g. datatrove
workers). Per stage a baseline child imports the stage module and its heavy libraries, validates the
config and exits; a_time and a_rss are least-squares slopes on log-log of the time and peak RSS ABOVE that
baseline (RSS deltas floored at 1 MB). Writes ``OUT/scaling.md`` and ``OUT/scaling.png`` and prints
``<stage> a_time=<x> a_rss=<y>`` per stage.

    python benchmarks/scaling.py [--quick] [--stages corpus.build,merge.apply] [--out docs/results]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scaling_inputs import (  # noqa: E402
    Stub,
    answers_file,
    corpus_input,
    parallel_folder,
    text_file,
    tiny_model,
)

ROOT = Path(__file__).resolve().parent.parent
FLOOR_MB = 1.0
# A small launcher spawns the child and reports its wait4 rusage: a child forked from this (large) process
# would inherit the parent's high-water RSS across exec, so ru_maxrss would never read below it.
LAUNCHER = """
import json, os, sys, threading, time
peak = {"tree_kb": 0}
def tree_rss(root):
    kids, rss = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/status") as f:
                    st = dict(line.split(":", 1) for line in f if ":" in line)
                kids.setdefault(int(st["PPid"]), []).append(int(d))
                rss[int(d)] = int(st.get("VmRSS", "0 kB").split()[0])
            except (OSError, ValueError, KeyError):
                pass
    todo, total = [root], 0
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += kids.get(p, [])
    return total
def sample(pid):
    while True:
        peak["tree_kb"] = max(peak["tree_kb"], tree_rss(pid))
        time.sleep(0.5)
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, 2, 1)])
threading.Thread(target=sample, args=(pid,), daemon=True).start()
_, status, ru = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"seconds": time.perf_counter() - t0, "maxrss_kb": ru.ru_maxrss, "tree_kb": peak["tree_kb"],
                  "code": code}))
sys.exit(code)
"""


@dataclass
class Case:
    """One stage's cost curve: ``prepare(n, work, ctx) -> job`` builds the inputs of size ``n``."""

    name: str
    unit: str
    sizes: list[int]
    quick: list[int]
    prepare: Callable[[int, Path, dict], dict]
    preload: list[str] = field(default_factory=list)
    linear: bool = True  # linear in its work by design
    streaming: bool = True  # needs O(1) memory in its work by design
    why: str = ""  # the algorithmic reason where linear/streaming is False
    rss_key: str = "rss_mb"  # tree_mb where workers are not waited for by the child (datatrove's forkserver)


class Context(dict):
    """What jobs share: ``ctx["stub"]`` (the endpoint), ``ctx["tiny"]`` (a tiny model dir, built on first use)."""

    def __init__(self, stub: Stub, root: Path):
        super().__init__(stub=stub)
        self.root = root

    def __missing__(self, key: str):
        if key != "tiny":
            raise KeyError(key)
        self[key] = tiny_model(self.root / "tiny", layers=2, hidden=64, seed=0)
        return self[key]


# ---------------------------------------------------------------------------------------------- jobs
def _stage(kind: str, config: dict) -> dict:
    return {"kind": kind, "config": config}


def prep_build(n: int, work: Path, ctx: dict) -> dict:
    inp = corpus_input(work / "input", n, shards=4, seed=n)
    return _stage("corpus.build", {"input": str(inp), "executor": {"kind": "local", "workers": 2}})


def prep_annotate(n: int, work: Path, ctx: dict) -> dict:
    inp = corpus_input(work / "input", n + 40, shards=2, seed=n)
    return _stage("corpus.annotate", {"input": str(inp), "llm": f"{ctx['stub'].base}#stub", "sample": n,
                                      "dev_size": 40, "label_field": "medical", "templates": ["de"],
                                      "n_boot": 100})


def prep_classifier(n: int, work: Path, ctx: dict) -> dict:
    inp = corpus_input(work / "input", n, shards=2, seed=n)
    return _stage("corpus.train_classifier", {"input": str(inp), "label_field": "medical",
                                              "fasttext": {"epoch": 5}})


def prep_tok_train(n: int, work: Path, ctx: dict) -> dict:
    src = text_file(work / "de.txt", n + n // 4, seed=n)
    corpus = {"name": "DE", "languages": {"de": {"sources": [str(src)]}}, "total_bytes": n}
    return _stage("tokenizer.train", {"algorithms": ["bpe"], "libraries": ["hf"], "vocab_sizes": [2000],
                                      "corpora": [corpus], "threads": 2})


def prep_tok_eval(n: int, work: Path, ctx: dict) -> dict:
    folder = parallel_folder(work / "parallel", n, seed=n)
    return _stage("tokenizer.eval", {"tokenizers": ["gpt2"], "parallel": str(folder),
                                     "langs": ["eng_Latn", "deu_Latn"], "plots": False})


def prep_pack(n: int, work: Path, ctx: dict) -> dict:
    src = text_file(work / "docs.txt", int(n * 2.6), seed=n)  # tiny BPE: ~2.6 bytes per token on this text
    return {"func": "pack", "args": {"source": str(src), "tokenizer": str(ctx["tiny"]), "seq_len": 256}}


def _kd_common(ctx: dict, work: Path, steps: int) -> dict:
    src = text_file(work / "kd.txt", int(steps * 4 * 256 * 2.6 * 1.4), seed=steps)
    return {"teacher": str(ctx["tiny"]), "text": [str(src)], "qa": None, "seq_len": 256, "batch_size": 4,
            "steps": steps, "device": "cpu", "dtype": "float32", "max_heldout_docs": 8}


def prep_cache(n: int, work: Path, ctx: dict) -> dict:
    return _stage("train.cache_logits", {**_kd_common(ctx, work, max(1, n // 1024)), "top_k": 64})


def prep_distill(n: int, work: Path, ctx: dict) -> dict:
    return _stage("train.distill", {**_kd_common(ctx, work, 8), "top_k": n, "mode": "offline", "eval_qa": 0,
                                    "compare_ce": False, "save_student": False})


def prep_judge(n: int, work: Path, ctx: dict) -> dict:
    ans = answers_file(work / "answers.jsonl", prompts=max(1, n // 2), seed=n)
    return _stage("eval.pairwise", {"answers": str(ans), "judge": f"{ctx['stub'].base}#stub", "concurrency": 8,
                                    "bootstrap": 50})


def prep_merge(n: int, work: Path, ctx: dict) -> dict:
    base = tiny_model(work / "base", layers=n, hidden=256, seed=0)
    cpt = tiny_model(work / "cpt", layers=n, hidden=256, seed=1)
    return _stage("merge.apply", {"base": str(base), "cpt": str(cpt), "method": "slerp", "t": 0.5})


CASES = [
    Case("corpus.build", "docs", [5_000, 20_000, 80_000], [300, 1200], prep_build, ["datatrove", "fasttext"],
         streaming=False, why="MinHash clustering holds the duplicate pairs of all docs (union-find)",
         rss_key="tree_mb"),
    Case("corpus.annotate", "docs", [250, 1_000, 4_000], [20, 80], prep_annotate, ["httpx"], streaming=False,
         why="the labelled sample is held to tune and write it (reservoir of `sample` rows)"),
    Case("corpus.train_classifier", "docs", [2_500, 10_000, 40_000], [400, 1600], prep_classifier, ["fasttext"],
         streaming=False,
         why="the group split and threshold tuning hold every labelled row (id, text, source, group, label)"),
    Case("tokenizer.train", "bytes", [1_000_000, 4_000_000, 16_000_000], [20_000, 80_000], prep_tok_train,
         ["tokenizers"], streaming=False, why="BPE holds the word-count table (grows ~ distinct words)"),
    Case("tokenizer.eval", "sentences", [2_000, 8_000, 32_000], [100, 400], prep_tok_eval, ["tokenizers"],
         why="parity needs only per-sentence token counts of aligned sentences (a few bytes each)"),
    Case("cpt.pack", "tokens", [250_000, 1_000_000, 4_000_000], [5_000, 20_000], prep_pack,
         ["torch", "transformers"]),
    Case("train.cache_logits", "tokens", [16_384, 65_536, 262_144], [1024, 4096], prep_cache,
         ["torch", "transformers"], streaming=False,
         why="the KD data is read whole, tokenised whole and stacked as int64 (N, seq_len) tensors"),
    Case("train.distill", "k", [16, 64, 256], [4, 16], prep_distill, ["torch", "transformers"]),
    Case("eval.pairwise", "calls", [400, 1_600, 6_400], [20, 80], prep_judge, ["httpx"], streaming=False,
         why="all judgments are held for Bradley-Terry and the bootstrap"),
    Case("merge.apply", "layers", [2, 8, 32], [1, 4], prep_merge, ["torch", "transformers", "mergekit"]),
]


# ---------------------------------------------------------------------------------------------- child
def _child(job_path: Path) -> None:
    job = json.loads(job_path.read_text())
    for mod in job.get("preload", []):
        __import__(mod)
    if job.get("func") == "pack":
        from transformers import AutoTokenizer

        from finemed.core.texts import iter_texts
        from finemed.data.packing import pack_texts

        if job.get("baseline"):
            return
        a = job["args"]
        tok = AutoTokenizer.from_pretrained(a["tokenizer"])
        blocks = pack_texts(iter_texts(a["source"]), tok, a["seq_len"], job["run_dir"])
        (Path(job["run_dir"]) / "work.json").write_text(json.dumps({"tokens": len(blocks) * a["seq_len"]}))
        return
    from finemed.core.stages import get, run_stage

    sdef = get(job["kind"])
    cfg = sdef.config.model_validate(job["config"])
    if not job.get("baseline"):
        run_stage(job["kind"], cfg, job["run_dir"], force=True)


def measure(job: dict, work: Path, tag: str) -> tuple[float, float, float]:
    """Run ``job`` in a fresh child; return (wall seconds, peak RSS MB, sampled peak of the tree's summed RSS MB)."""
    job = {**job, "run_dir": str(work / f"run-{tag}")}
    path = work / f"job-{tag}.json"
    path.write_text(json.dumps(job))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-S", "-c", LAUNCHER, sys.executable, __file__, "--child", str(path)]
    with open(work / f"log-{tag}.txt", "wb") as log:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, env=env, cwd=str(work))
    if proc.returncode != 0:
        tail = (work / f"log-{tag}.txt").read_text(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"{tag}: child exited {proc.returncode}:\n" + "\n".join(tail))
    got = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return got["seconds"], got["maxrss_kb"] / 1024.0, got["tree_kb"] / 1024.0  # Linux: KB


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) on log(x)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def run_case(case: Case, sizes: list[int], root: Path, ctx: dict) -> dict:
    work = root / case.name
    work.mkdir(parents=True, exist_ok=True)
    base_job = {**case.prepare(sizes[0], work / "prep-base", ctx), "baseline": True, "preload": case.preload}
    base_t, base_rss, _ = measure(base_job, work, "baseline")
    points = []
    for n in sizes:
        job = {**case.prepare(n, work / f"prep-{n}", ctx), "preload": case.preload}
        t, rss, tree = measure(job, work, str(n))
        wj = work / f"run-{n}" / "work.json"
        actual = next(iter(json.loads(wj.read_text()).values())) if wj.is_file() else n
        points.append({"n": actual, "seconds": round(t, 2), "rss_mb": round(rss, 1), "tree_mb": round(tree, 1)})
        shutil.rmtree(work / f"prep-{n}", ignore_errors=True)
        shutil.rmtree(work / f"run-{n}", ignore_errors=True)
        print(f"  {case.name} n={actual} {t:.1f} s {rss:.0f} MB", flush=True)
    return fit({"stage": case.name, "unit": case.unit, "points": points, "baseline_s": round(base_t, 2),
                "baseline_mb": round(base_rss, 1), "load1": round(os.getloadavg()[0], 1),
                "cmd": " ".join(["python benchmarks/scaling.py", *sys.argv[1:]])})


def fit(r: dict) -> dict:
    """Add the exponents (all points, and the last step) and the marginal MB per unit to a stage's result."""
    case = next((c for c in CASES if c.name == r["stage"]), None)
    key = case.rss_key if case else "rss_mb"
    pts, xs = r["points"], [p["n"] for p in r["points"]]
    secs = [max(p["seconds"] - r["baseline_s"], 0.05) for p in pts]
    mbs = [max(p[key] - r["baseline_mb"], FLOOR_MB) for p in pts]
    per = (pts[-1][key] - pts[0][key]) / max(xs[-1] - xs[0], 1)
    return {**r, "rss_key": key, "a_time": slope(xs, secs), "a_rss": slope(xs, mbs),
            "a_time_last": slope(xs[-2:], secs[-2:]), "a_rss_last": slope(xs[-2:], mbs[-2:]), "mb_per_unit": per,
            "linear": case.linear if case else True, "streaming": case.streaming if case else True,
            "why": case.why if case else ""}


def _fmt(a: float | None) -> str:
    return "n/a" if a is None else f"{a:.2f}"


def _verdict(r: dict) -> str:
    notes = []
    if r["streaming"] and r["a_rss"] is not None and r["a_rss"] > 0.2:
        notes.append("**memory grows** (streaming by design)")
    if r["linear"] and r["a_time"] is not None and r["a_time"] > 1.15:
        notes.append("**super-linear time**")
    if not r["streaming"]:
        notes.append(f"holds its work by design: {r['why']}")
    return "; ".join(notes) or "ok"


def write_report(results: list[dict], out: Path, quick: bool, seconds: float, failed: list[str] = ()) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    lines = ["# Cost curves: time and peak memory vs work per stage", "",
             f"Measured on {os.cpu_count()} cores by: "
             + "; ".join(f"`{c}`" for c in dict.fromkeys(r.get("cmd", "?") for r in results))
             + f". Load average when this file was written {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)"
             + (f", after {seconds / 60:.1f} min" if seconds else "")
             + ". 'load' is the 1-min load average when the stage finished (the box was shared by other jobs: "
             "times are noisy, memory is not).", "",
             "Each point is a fresh child process; peak RSS is `os.wait4` `ru_maxrss` (the largest single process of "
             "the child and its descendants). **a_time / a_rss are least-squares log-log slopes of the time and "
             "peak RSS above the import baseline** (a child that imports the stage module and its heavy libraries "
             "and validates the config, then exits; RSS deltas floored at 1 MB); in brackets the slope between the two "
             "largest sizes only (fixed costs inside the stage weigh less there). 'MB per unit' is the marginal "
             "(peak RSS growth) / (work growth) from the smallest to the largest size. 'tree MB' is the peak of "
             "the summed RSS of the child and all its descendants, sampled every 0.5 s (/proc), e.g. both "
             "datatrove workers together; a_rss uses it where the table says so (corpus.build: datatrove's workers are "
             "children of a multiprocess forkserver that the child never waits for, so `ru_maxrss` misses them).",
             "",
             "| stage | unit | sizes | seconds | peak RSS MB | tree MB | baseline s / MB | load | a_time | a_rss | "
             "MB per unit | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    results = [fit(r) for r in results]
    for r in results:
        pts = r["points"]
        lines.append(f"| {r['stage']} | {r['unit']} | {' / '.join(str(p['n']) for p in pts)} | "
                     f"{' / '.join(str(p['seconds']) for p in pts)} | {' / '.join(str(p['rss_mb']) for p in pts)} | "
                     f"{' / '.join(str(p['tree_mb']) for p in pts)} | "
                     f"{r['baseline_s']} / {r['baseline_mb']} | {r.get('load1', '')} | "
                     f"{_fmt(r['a_time'])} ({_fmt(r['a_time_last'])}) | "
                     f"{_fmt(r['a_rss'])} ({_fmt(r['a_rss_last'])}){' tree' if r['rss_key'] == 'tree_mb' else ''} | "
                     f"{r['mb_per_unit']:.3g} | {_verdict(r)} |")
    lines += ["", "Acceptance: a streaming stage has a_rss <= 0.2; a stage linear by design has a_time <= 1.15.", ""]
    lines += [f"- FAILED {f}" for f in failed]
    (out / "scaling.md").write_text("\n".join(lines) + "\n")
    (out / "scaling.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "scaling.png")
    return results


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in results:
        xs = [p["n"] / r["points"][0]["n"] for p in r["points"]]
        label = f"{r['stage']} ({r['unit']})"
        ax_t.plot(xs, [max(p["seconds"] - r["baseline_s"], 0.05) for p in r["points"]], "o-", label=label)
        ax_m.plot(xs, [max(p[r["rss_key"]] - r["baseline_mb"], FLOOR_MB) for p in r["points"]], "o-", label=label)
    for ax, a in ((ax_t, 1.0), (ax_m, 0.2)):  # the acceptance slopes, as guides
        ax.plot([1, 16], [1, 16 ** a], "k--", lw=0.8, alpha=0.5, label=f"slope {a:g}")
    for ax, title in ((ax_t, "wall time above baseline (s)"), (ax_m, "peak RSS above baseline (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("work / smallest work")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    ax_m.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="two tiny sizes per stage (seconds; for the test)")
    ap.add_argument("--stages", default="", help="comma-separated stage names (default: all)")
    ap.add_argument("--sizes", action="append", default=[], metavar="STAGE=N,N,N",
                    help="override one stage's sizes (repeatable), e.g. corpus.build=2500,10000,40000")
    ap.add_argument("--update", action="store_true",
                    help="merge into OUT/scaling.json: rerun some --stages, keep the other stages' rows")
    ap.add_argument("--report-only", action="store_true", help="rewrite OUT/scaling.md and .png from OUT/scaling.json")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--workdir", type=Path, default=None, help="where the scratch temp dir goes (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir (inputs, child logs)")
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child)
        return []
    if args.report_only:
        return write_report(json.loads((args.out / "scaling.json").read_text()), args.out, False, 0.0)
    wanted = [s for s in args.stages.split(",") if s]
    unknown = set(wanted) - {c.name for c in CASES}
    if unknown:
        ap.error(f"unknown stage(s) {sorted(unknown)}; known: {', '.join(c.name for c in CASES)}")
    by_name = {c.name: c for c in CASES}
    cases = [by_name[w] for w in wanted] if wanted else CASES
    override = {k: [int(x) for x in v.split(",")] for k, v in (o.split("=", 1) for o in args.sizes)}
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="finemed-scaling-", dir=args.workdir))
    os.environ.setdefault("FINEMED_CACHE", str(Path.home() / ".cache" / "finemed"))
    results: list[dict] = json.loads((args.out / "scaling.json").read_text()) if args.update else []
    failed: list[str] = []
    with Stub() as stub:
        ctx = Context(stub, root)
        try:
            for case in cases:
                try:
                    sizes = override.get(case.name) or (case.quick if args.quick else case.sizes)
                    r = run_case(case, sizes, root, ctx)
                except Exception as err:  # noqa: BLE001 - one broken stage must not lose the others' curves
                    print(f"{case.name} FAILED: {err}", file=sys.stderr, flush=True)
                    failed.append(f"{case.name}: {str(err).splitlines()[0]}")
                    continue
                old = [i for i, x in enumerate(results) if x["stage"] == r["stage"]]
                if old:
                    results[old[0]] = r
                else:
                    results.append(r)
                print(f"{r['stage']} a_time={_fmt(r['a_time'])} a_rss={_fmt(r['a_rss'])}", flush=True)
                write_report(results, args.out, args.quick, time.perf_counter() - t0, failed)  # after each stage
        finally:
            if results:
                write_report(results, args.out, args.quick, time.perf_counter() - t0, failed)
            if args.keep:
                print(f"scratch kept: {root}", file=sys.stderr)
            else:
                shutil.rmtree(root, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()

"""Benchmark the evaluation stage against its peers; every comparison in ``--rounds`` (>= 3) alternating rounds.

1. XQuAD-de 0-shot on SmolLM2, the same n: ``finemed eval qa`` (the ``eval.qa`` stage: finemed loads the model
   object and hands it to lm-eval's HFLM) vs lm-eval's own HF backend loading the model itself
   (``model="hf"``), at the same precision (the runtime policy: on this CPU fp32 weights under bf16
   autocast, passed to lm-eval as ``dtype`` + ``mixed_precision_dtype``), batch size and task YAML. Both
   are the same HFLM engine, so each side runs in its OWN fresh process (nothing warm is shared): one
   untimed warm-up process per side first (page cache, ``.pyc`` files), then the order alternating per
   round; the time counted is task index + model load + evaluation inside that process. Prints examples/s
   of both, the per-round ratio min/median/max, and whether EM/F1 and predictions are identical.
   Differences in work: ours loads the model with finemed's loader (then wraps it in HFLM) where the peer
   lets HFLM load it, and ours writes ``qa_results.json`` and ``predictions_<task>.json`` into a run dir inside
   the timer; the peer keeps its samples in memory (``log_samples=True``).
2. Client ceiling: the same judge requests against a local server that answers in parallel after a fixed
   latency (the test suite's FaultServer), concurrency 8 vs 1.
3. Judge throughput against a real local ``transformers serve --continuous-batching`` (SmolLM2): the same N
   unique pairwise judge requests through :class:`finemed.core.llm.LLMClient` at concurrency 8 vs 1 (no cache),
   and the prefill share of a request with the Amdahl bound it sets (skip with ``--skip-judge``).

Every comparison has an untimed warm-up of each side (:mod:`_rounds`). The last two lines are ``ratio means:
...`` and ``ratio=<x>``: the median over rounds of lm-eval HF backend seconds / ours (= examples/s ours /
peer; goal >= 1.0).

    flock /tmp/finemed-heavy.lock .venv/bin/python benchmarks/bench_eval.py [--n 16] [--rounds 3] [--skip-judge]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _rounds import fresh_process, print_ratio, report, rounds_arg, run_rounds

for _v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_v, "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "evaluation"))

TASK = "xquad_de_0shot"
RATIO = "lm-eval HF backend seconds / finemed eval qa seconds, same n, task and precision (> 1: ours faster)"


def qa_side(side: str, n: int, batch_size: int) -> dict:
    """Child process: one side of the QA comparison; returns seconds (load + evaluate), EM/F1, predictions."""
    import lm_eval

    from finemed.core.lmeval import task_manager
    from finemed.core.qa_eval import QaEvalConfig, run_eval
    from finemed.core.runtime import resolve
    from finemed.models.registry import resolve_model_path

    path = resolve_model_path("smollm2")
    rt = resolve("cpu", "auto")
    if side == "peer":  # lm-eval loads and runs the model itself (HF backend), at our runtime's precision
        weights = str(rt.weight_dtype).replace("torch.", "")
        autocast = f",mixed_precision_dtype={rt.compute}" if rt.autocast_dtype is not None else ""
        t0 = time.perf_counter()  # the task index is part of each side's work (ours builds it inside run_eval)
        tm = task_manager()
        out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={path},dtype={weights},device=cpu{autocast}",
                                      batch_size=batch_size, tasks=[f"finemed_{TASK}"], limit=n, task_manager=tm,
                                      log_samples=True, bootstrap_iters=0)
        secs = time.perf_counter() - t0
        res = out["results"][f"finemed_{TASK}"]
        scores = {k.split(",")[0]: v for k, v in res.items() if k.split(",")[0] in ("exact_match", "f1")}
        preds = {x["doc"]["id"]: x["filtered_resps"][0].strip() for x in out["samples"][f"finemed_{TASK}"]}
    else:  # ours: the eval.qa stage body (finemed loads the model object, lm-eval evaluates it)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = run_eval(QaEvalConfig(model=str(path), tasks=[TASK], limit=n, batch_size=batch_size,
                                        device="cpu"), Path(tmp))
            secs = time.perf_counter() - t0
            preds = json.loads((Path(tmp) / f"predictions_{TASK}.json").read_text(encoding="utf-8"))
        scores = {k: res.tasks[TASK][k] for k in ("exact_match", "f1")}
    return {"side": side, "seconds": secs, "scores": scores, "preds": preds, "runtime": rt.describe()}


def bench_qa(n: int, batch_size: int, rounds: int) -> list[float]:
    """Each side in a fresh process per round, alternating; per-round ratio ours ex/s / peer ex/s."""
    children: dict[str, list[dict]] = {"peer": [], "ours": []}

    def side(name: str):
        def once() -> float:
            run = fresh_process([sys.executable, __file__, "--child", name, "--n", str(n),
                                 "--batch-size", str(batch_size)])
            rep = run.last_json()
            rep["cpu_s"] = run.cpu_s
            children[name].append(rep)
            print(f"  {name}: {n / rep['seconds']:.2f} ex/s (load+eval {rep['seconds']:.1f}s, process "
                  f"{run.wall_s:.1f}s, CPU {run.cpu_s:.1f}s, peak RSS {run.peak_rss_mb:.0f} MB) "
                  f"EM/F1 {rep['scores']}", flush=True)
            return rep["seconds"]
        return once

    res = run_rounds({"peer": side("peer"), "ours": side("ours")}, rounds, warmup=True, unit="s")
    for name in children:
        del children[name][0]  # the untimed warm-up process
    runtime = children["ours"][0]["runtime"]
    for name, label in (("peer", "lm-eval HF backend"), ("ours", "finemed eval qa    ")):
        secs = statistics.median(res.values[name])
        print(f"qa: n={n} batch={batch_size} {label} {n / secs:.2f} ex/s (median {secs:.1f}s) "
              f"EM/F1 {children[name][0]['scores']}")
    same_scores = all(c["scores"] == children["peer"][0]["scores"] for cs in children.values() for c in cs)
    ours0 = children["ours"][0]["preds"]
    same_preds = sum(children["peer"][0]["preds"].get(k) == v for k, v in ours0.items())
    stable = all(c["preds"] == ours0 for cs in children.values() for c in cs)
    print(f"qa: precision {runtime}; identical scores in every process: {same_scores}; identical predictions "
          f"{same_preds}/{len(ours0)} (all rounds alike: {stable})")
    report("qa process CPU seconds lm-eval HF backend / ours",
           [p["cpu_s"] / o["cpu_s"] for p, o in zip(children["peer"], children["ours"])],
           "(CPU hardly grows with other load; wall time does)")
    return res.ratios("peer", "ours")  # seconds peer / seconds ours = ex/s ours / ex/s peer


def bench_client_ceiling(rounds: int, n: int = 32, latency_s: float = 0.25) -> list[float]:
    """The client's own limit: the same requests against a server answering in parallel after a fixed
    latency, concurrency 8 vs 1; per-round ratio of request rates."""
    from eval_servers import FaultServer

    from finemed.core.llm import LLMClient

    server = FaultServer(delay_s=latency_s)
    server.start()
    tags = iter(range(10**6))

    def side(conc: int):
        def once() -> float:
            client = LLMClient(f"{server.base}#judge", concurrency=conc)
            t0 = time.perf_counter()
            client.chat([[{"role": "user", "content": f"c{conc}-{next(tags)}-{i}"}] for i in range(n)])
            rate = n / (time.perf_counter() - t0)
            client.close()
            return rate
        return once

    try:
        res = run_rounds({"conc1": side(1), "conc8": side(8)}, rounds, warmup=True, unit="req/s", log=None)
    finally:
        server.stop()
    print(f"client ceiling: {n} requests, {latency_s}s server latency: concurrency 1 "
          f"{statistics.median(res.values['conc1']):.1f} req/s, concurrency 8 "
          f"{statistics.median(res.values['conc8']):.1f} req/s (peak in flight {server.peak})")
    return res.ratios("conc8", "conc1")


def bench_judge(judge_n: int, rounds: int, continuous_batching: bool = True) -> list[float]:
    from eval_servers import smollm2_dir, start_transformers_serve, stop_process

    from finemed.core.llm import LLMClient
    from finemed.evaluation.judge import PROMPTS

    model_dir = smollm2_dir()
    if model_dir is None:
        print("judge: skipped (SmolLM2 cache missing)")
        return []
    proc, base = start_transformers_serve(model_dir, continuous_batching=continuous_batching,
                                          log_path=Path(tempfile.gettempdir()) / "bench_eval_serve.log")
    print(f"judge: transformers serve {'with' if continuous_batching else 'without'} continuous batching, CPU")
    p = PROMPTS["de"]
    tags = iter(range(10**6))

    def convs(tag: str):
        return [[{"role": "system", "content": p["system"]},
                 {"role": "user", "content": p["user"].format(prompt=f"Frage {tag}{i}: Was hilft bei Fieber?",
                                                              a="Viel trinken und ausruhen.", b="Kalt duschen.")}]
                for i in range(judge_n)]

    def timed(conc: int, max_tokens: int, tag: str):
        client = LLMClient(f"{base}#{model_dir}", concurrency=conc, max_tokens=max_tokens, timeout_s=300)
        t0 = time.perf_counter()
        replies = client.chat(convs(tag))
        secs = time.perf_counter() - t0
        client.close()
        return secs, replies

    def side(conc: int):
        def once() -> float:
            secs, replies = timed(conc, 16, f"c{conc}-{next(tags)}-")
            ok = sum(r.text is not None for r in replies)
            return ok / secs
        return once

    try:
        LLMClient(f"{base}#{model_dir}", max_tokens=8, timeout_s=300, concurrency=8).chat(convs("warm")[:8])
        # prefill share: the same requests at concurrency 1 with one new token; prefill is compute-bound on
        # CPU, so batching cannot speed it up and Amdahl caps the concurrency gain at 1 / (f + (1 - f) / 8)
        t_prefill, _ = timed(1, 1, "p-")
        res = run_rounds({"conc1": side(1), "conc8": side(8)}, rounds, warmup=True, unit="req/s")
    finally:
        stop_process(proc)
    if not all(res.values["conc1"]) or not all(res.values["conc8"]):
        print("judge: some round had no successful requests; see the server log")
        return []
    f = min(1.0, t_prefill * statistics.median(res.values["conc1"]) / judge_n)
    print(f"judge: prefill share at concurrency 1 f={f:.2f} (1-token requests {t_prefill:.1f}s); "
          f"Amdahl bound with decode fully batched: {1 / (f + (1 - f) / 8):.2f}x")
    return res.ratios("conc8", "conc1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=rounds_arg, default=3)
    ap.add_argument("--judge-n", type=int, default=16)
    ap.add_argument("--skip-judge", action="store_true", help="skip the transformers-serve judge benchmark")
    ap.add_argument("--no-cb", action="store_true", help="serve without --continuous-batching (one generate at a time)")
    ap.add_argument("--child", choices=["peer", "ours"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(qa_side(args.child, args.n, args.batch_size)))
        return
    report("client ceiling concurrency 8 / 1", bench_client_ceiling(args.rounds))
    if not args.skip_judge:
        judge = bench_judge(args.judge_n, args.rounds, continuous_batching=not args.no_cb)
        if judge:
            report("judge throughput concurrency 8 / 1", judge)
    ratios = bench_qa(args.n, args.batch_size, args.rounds)
    report("qa examples/s ours / lm-eval HF backend", ratios, "(goal >= 1.0)")
    print_ratio(ratios, RATIO)


if __name__ == "__main__":
    main()

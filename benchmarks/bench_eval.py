"""Benchmark the evaluation stage against its peers, in one process run.

1. XQuAD-de 0-shot on SmolLM2, the same n: ``finemed eval qa`` (our model object through lm-eval) vs lm-eval's own
   HF backend loading the model itself (``model="hf"``, ``dtype=bfloat16``, same batch size, same task YAML).
   Prints examples/s of both, their ratio, and both EM/F1 (they must be identical).
2. Judge throughput against a real local ``transformers serve --continuous-batching`` (SmolLM2): the same N
   unique pairwise judge requests through :class:`finemed.llm.LLMClient` at concurrency 8 vs 1 (no cache), the
   prefill share of a request and the Amdahl bound it sets, and the client's own ceiling against a parallel server.

The last line is ``ratio=<x>``: examples/s of ours over lm-eval's HF backend (goal >= 1.0).

    flock /tmp/finemed-heavy.lock .venv/bin/python benchmarks/bench_eval.py [--n 40] [--judge-n 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for _v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_v, "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "evaluation"))

TASK = "finemed_xquad_de_0shot"


def bench_qa(n: int, batch_size: int) -> tuple[float, dict, dict]:
    import lm_eval

    from finemed.evaluation.lmeval_runner import task_manager
    from finemed.evaluation.qa import QaEvalConfig, evaluate_model
    from finemed.models.loading import load_causal_lm
    from finemed.models.registry import resolve_model_path

    path = resolve_model_path("smollm2")
    # peer: lm-eval loads and runs the model itself (HF backend); timing covers load + evaluation
    t0 = time.perf_counter()
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={path},dtype=bfloat16,device=cpu",
                                  batch_size=batch_size, tasks=[TASK], limit=n, task_manager=task_manager(),
                                  log_samples=True, bootstrap_iters=0)
    peer_s = time.perf_counter() - t0
    peer = {k.split(",")[0]: v for k, v in out["results"][TASK].items() if k.split(",")[0] in ("exact_match", "f1")}
    peer_preds = {x["doc"]["id"]: x["filtered_resps"][0].strip() for x in out["samples"][TASK]}
    # ours: finemed loads the model object (safetensors only) and hands it to lm-eval
    t0 = time.perf_counter()
    model, tok = load_causal_lm(path, dtype="bfloat16")
    with tempfile.TemporaryDirectory() as tmp:
        res = evaluate_model(model, tok, QaEvalConfig(model=str(path), tasks=["xquad_de_0shot"], limit=n,
                                                      batch_size=batch_size), Path(tmp))
        import json

        our_preds = json.loads((Path(tmp) / "predictions_xquad_de_0shot.json").read_text(encoding="utf-8"))
    ours_s = time.perf_counter() - t0
    ours = {k: res["tasks"]["xquad_de_0shot"][k] for k in ("exact_match", "f1")}
    print(f"qa: n={n} batch={batch_size} lm-eval HF backend {n / peer_s:.2f} ex/s ({peer_s:.1f}s) EM/F1 {peer}")
    print(f"qa: n={n} batch={batch_size} finemed eval qa     {n / ours_s:.2f} ex/s ({ours_s:.1f}s) EM/F1 {ours}")
    same = sum(peer_preds.get(k) == v for k, v in our_preds.items())
    print(f"qa: identical scores: {peer == ours}; identical predictions: {same}/{len(our_preds)}")
    return peer_s / ours_s, peer, ours


def bench_judge(judge_n: int, continuous_batching: bool = False) -> float:
    from eval_servers import smollm2_dir, start_transformers_serve, stop_process

    from finemed.evaluation.judge import PROMPTS
    from finemed.llm import LLMClient

    model_dir = smollm2_dir()
    if model_dir is None:
        print("judge: skipped (SmolLM2 cache missing)")
        return float("nan")
    proc, base = start_transformers_serve(model_dir, continuous_batching=continuous_batching,
                                          log_path=Path(tempfile.gettempdir()) / "bench_eval_serve.log")
    print(f"judge: transformers serve {'with' if continuous_batching else 'without'} continuous batching, CPU")
    try:
        p = PROMPTS["de"]

        def convs(tag: str):
            return [[{"role": "system", "content": p["system"]},
                     {"role": "user", "content": p["user"].format(prompt=f"Frage {tag}{i}: Was hilft bei Fieber?",
                                                                  a="Viel trinken und ausruhen.", b="Kalt duschen.")}]
                    for i in range(judge_n)]

        LLMClient(f"{base}#{model_dir}", max_tokens=8, timeout_s=300, concurrency=8).chat(convs("warm")[:8])  # warm-up
        def timed(conc: int, max_tokens: int, tag: str):
            client = LLMClient(f"{base}#{model_dir}", concurrency=conc, max_tokens=max_tokens, timeout_s=300)
            t0 = time.perf_counter()
            replies = client.chat(convs(tag))
            secs = time.perf_counter() - t0
            client.close()
            return secs, replies, client.stats

        # prefill share: the same requests at concurrency 1 with one new token; prefill is compute-bound on
        # CPU, so batching cannot speed it up and Amdahl caps the concurrency gain at 1 / (f + (1 - f) / 8)
        t_prefill, _, _ = timed(1, 1, "p-")
        rates = {}
        for conc in (1, 8):
            secs, replies, stats = timed(conc, 16, f"c{conc}-")
            ok = sum(r.text is not None for r in replies)
            rates[conc] = ok / secs
            print(f"judge: concurrency {conc}: {ok}/{judge_n} ok in {secs:.1f}s = {rates[conc]:.2f} req/s "
                  f"(calls {stats['calls']}, retries {stats['retries']}); first reply {replies[0].text!r}")
    finally:
        stop_process(proc)
    if not rates[1] or not rates[8]:
        print("judge: no successful requests; see the server log")
        return float("nan")
    ratio = rates[8] / rates[1]
    f = min(1.0, t_prefill * rates[1] / judge_n)
    print(f"judge: prefill share at concurrency 1 f={f:.2f} (1-token requests {t_prefill:.1f}s); "
          f"Amdahl bound with decode fully batched: {1 / (f + (1 - f) / 8):.2f}x")
    print(f"judge: throughput ratio concurrency 8 / 1 = {ratio:.2f}")
    return ratio


def bench_client_ceiling(n: int = 32, latency_s: float = 0.25) -> float:
    """The client's own limit: the same judge requests against a local server that answers in parallel after a
    fixed latency (the test suite's FaultServer), concurrency 8 vs 1."""
    from eval_servers import FaultServer

    from finemed.llm import LLMClient

    server = FaultServer(delay_s=latency_s)
    server.start()
    try:
        rates = {}
        for conc in (1, 8):
            client = LLMClient(f"{server.base}#judge", concurrency=conc)
            t0 = time.perf_counter()
            client.chat([[{"role": "user", "content": f"c{conc}-{i}"}] for i in range(n)])
            rates[conc] = n / (time.perf_counter() - t0)
            client.close()
    finally:
        server.stop()
    print(f"client ceiling: {n} requests, {latency_s}s server latency: concurrency 1 {rates[1]:.1f} req/s, "
          f"concurrency 8 {rates[8]:.1f} req/s, ratio {rates[8] / rates[1]:.2f} (peak in flight {server.peak})")
    return rates[8] / rates[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--judge-n", type=int, default=16)
    ap.add_argument("--skip-judge", action="store_true")
    ap.add_argument("--no-cb", action="store_true", help="serve without --continuous-batching (one generate at a time)")
    args = ap.parse_args()
    import torch

    torch.manual_seed(0)
    if not args.skip_judge:
        bench_client_ceiling()
        bench_judge(args.judge_n, continuous_batching=not args.no_cb)
    ratio, _, _ = bench_qa(args.n, args.batch_size)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()

"""Benchmark the vLLM engine against the HF engine on the same work (SmolLM2, greedy), >= 3 alternating rounds.

Both sides run in this process against state prepared once, untimed: the HF side holds the model loaded by
finemed's loader on the runtime policy's device/precision (CPU: fp32 weights under bf16 autocast where the CPU
has bf16); the vLLM side is ONE managed server (``finemed.core.engine.serve``; its start time is printed apart,
since a recipe pays it once). Caches are off on both sides. Comparisons, each its own rounds:

1. generation tokens/s: the same ``--gen`` germediq prompts, ``--max-tokens`` new tokens, through
   :func:`finemed.models.generate.generate` (batch 8) vs :class:`finemed.core.llm.LLMClient` on the server
   (concurrency 16). Tokens are counted the same way on both sides: the answers re-tokenised.
2. judge pairs/s at concurrency 8: ``--pairs`` pairwise judge requests (both orders) through
   :func:`finemed.evaluation.judge.judge_llm`, a ``local:`` judge on HF (batch 8) vs on vLLM (concurrency 8).
3. annotate docs/s: ``--docs`` yes/no verdicts through :func:`finemed.core.verdicts.verdicts` (HF: next-token
   probabilities, batch 8; vLLM: top_logprobs, concurrency 8).
4. QA examples/s through lm-eval: XQuAD-de 0-shot, ``--qa`` examples, HFLM on our model object vs
   ``local-completions`` on the server (:func:`finemed.core.qa_eval.evaluate_model`).

Every line carries the 1-minute load average (the box is shared). The last two lines are ``ratio means: ...``
and ``ratio=<x>``: the median over rounds of vLLM generated tokens/s over HF's (the two sides may stop at
different lengths, so tokens per second, not seconds, is what compares).

    .venv/bin/python benchmarks/bench_vllm.py [--rounds 3] [--gen 16] [--pairs 8] [--docs 24] [--qa 16]
"""

from __future__ import annotations

import argparse
import os
import time

from _rounds import print_ratio, report, rounds_arg, run_rounds

for _v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_v, "1")
RATIO = "vLLM generated tokens/s / HF generated tokens/s, same prompts and max tokens (> 1: ours faster)"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=rounds_arg, default=3)
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--docs", type=int, default=24)
    ap.add_argument("--qa", type=int, default=16)
    args = ap.parse_args()

    from finemed.core import engine
    from finemed.core.llm import LLMClient
    from finemed.core.lmeval import make_lm, make_server_lm
    from finemed.core.qa_eval import QaEvalConfig, evaluate_model
    from finemed.core.verdicts import verdicts
    from finemed.corpus.annotate import build_prompt
    from finemed.corpus.rows import read_rows
    from finemed.corpus.sample_input import default_dev_input
    from finemed.evaluation.answers import AnswerRow, load_prompts
    from finemed.evaluation.judge import judge_llm
    from finemed.models.generate import generate
    from finemed.models.registry import resolve_model_path

    if engine.vllm_python() is None:
        raise SystemExit(f"no vLLM venv at {engine.vllm_venv()}; run `make vllm` first")
    path = resolve_model_path("smollm2")
    t0 = time.perf_counter()
    server = engine.serve(path)
    print(f"vLLM server start: {time.perf_counter() - t0:.1f} s ({load()}); paid once per recipe", flush=True)
    hf = LLMClient(f"local:{path}", engine="hf", batch_size=8, max_tokens=args.max_tokens)
    model, tok, rt = hf.local_model()
    served = LLMClient(f"local:{path}", engine="vllm", concurrency=16, max_tokens=args.max_tokens)
    assert served.server is server

    def ntok(texts) -> int:
        return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)

    # 1. generation tokens/s
    prompts = [p.prompt for p in load_prompts("builtin:germediq")[:args.gen]]
    convs = [[{"role": "user", "content": p}] for p in prompts]

    def gen_hf() -> float:
        t = time.perf_counter()
        gens = generate(model, tok, prompts, max_new_tokens=args.max_tokens, batch_size=8, runtime=rt)
        return ntok([g.text for g in gens]) / (time.perf_counter() - t)

    def gen_vllm() -> float:
        t = time.perf_counter()
        replies = served.chat(convs)
        assert all(r.text is not None for r in replies), replies[0].error
        return ntok([r.text for r in replies]) / (time.perf_counter() - t)

    print(f"== generation tokens/s ({args.gen} prompts x {args.max_tokens} tokens) {load()}", flush=True)
    gen = run_rounds({"hf": gen_hf, "vllm": gen_vllm}, args.rounds, warmup=True, unit="tok/s")
    gen_ratio = gen.ratios("vllm", "hf")
    report(f"generation vLLM/HF tokens/s ({load()})", gen_ratio)

    # 2. judge pairs/s at concurrency 8
    rows = load_prompts("builtin:germediq")[:args.pairs]
    triples = [(p.prompt_id, AnswerRow(model="a", prompt_id=p.prompt_id, prompt=p.prompt, answer="Bitte ruhen."),
                AnswerRow(model="b", prompt_id=p.prompt_id, prompt=p.prompt, answer="Viel Kaffee trinken."))
               for p in rows]
    judge_hf = LLMClient(f"local:{path}", engine="hf", batch_size=8, max_tokens=16)
    judge_hf._local = (model, tok, rt)
    judge_vllm = LLMClient(f"local:{path}", engine="vllm", concurrency=8, max_tokens=16)

    def judge(client) -> float:
        t = time.perf_counter()
        judge_llm(triples, client, "de")
        return len(triples) / (time.perf_counter() - t)

    print(f"== judge pairs/s ({args.pairs} pairs, 2 orders, max_tokens 16, concurrency 8) {load()}", flush=True)
    jr = run_rounds({"hf": lambda: judge(judge_hf), "vllm": lambda: judge(judge_vllm)}, args.rounds, warmup=True,
                    unit="pairs/s")
    report(f"judge vLLM/HF pairs/s ({load()})", jr.ratios("vllm", "hf"))

    # 3. annotate docs/s
    docs = [r for _, r in zip(range(args.docs), read_rows(default_dev_input()))]
    msgs = [[{"role": "user", "content": build_prompt("de", d["text"], [], 600, 200)}] for d in docs]
    ann_vllm = LLMClient(f"local:{path}", engine="vllm", concurrency=8, max_tokens=8)

    def annotate(client) -> float:
        t = time.perf_counter()
        vs = verdicts(client, msgs, cache_tag="bench")
        assert all(v.p_yes is not None for v in vs)
        return len(msgs) / (time.perf_counter() - t)

    print(f"== annotate docs/s ({len(msgs)} docs) {load()}", flush=True)
    ar = run_rounds({"hf": lambda: annotate(judge_hf), "vllm": lambda: annotate(ann_vllm)}, args.rounds,
                    warmup=True, unit="docs/s")
    report(f"annotate vLLM/HF docs/s ({load()})", ar.ratios("vllm", "hf"))

    # 4. QA examples/s through lm-eval
    cfg = QaEvalConfig(model=str(path), tasks=["xquad_de_0shot"], limit=args.qa)
    hflm = make_lm(model, tok, batch_size=8, mixed_precision=rt.autocast_dtype)
    srvlm, _ = make_server_lm(path, batch_size=8, concurrency=8)

    def qa(lm) -> float:
        t = time.perf_counter()
        evaluate_model(None, None, cfg, None, lm=lm)
        return args.qa / (time.perf_counter() - t)

    print(f"== QA examples/s through lm-eval ({args.qa} XQuAD-de 0-shot) {load()}", flush=True)
    qr = run_rounds({"hf": lambda: qa(hflm), "vllm": lambda: qa(srvlm)}, args.rounds, warmup=True, unit="ex/s")
    report(f"QA vLLM/HF examples/s ({load()})", qr.ratios("vllm", "hf"))

    for c in (hf, served, judge_hf, judge_vllm, ann_vllm):
        c.close()
    engine.stop_all()
    print_ratio(gen_ratio, RATIO)


if __name__ == "__main__":
    main()

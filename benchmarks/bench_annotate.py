"""Annotate benchmark: verdicts by next-token probability vs the generate-and-parse labelling path.

The peer is finemed's own generate-and-parse path, not an outside library: no library labels docs offline on a
CPU with a local model (datatrove's inference runner needs a vLLM, SGLang or HTTP endpoint server), so the peer
is the method FineWeb-Edu-style annotation uses (the LLM writes its answer, a parser reads the label), on
finemed's local generation (:meth:`finemed.core.llm.LLMClient.chat`: transformers ``generate``, batched).

Same docs (drawn from the dev input), same German prompt, same local SmolLM2, same batch size, no cache.
Differences in work, by design (that is the method compared): the verdict path is one forward pass per batch
with logits at the last position only (:func:`finemed.core.verdicts.local_verdicts`); the peer generates up to
``--max-tokens`` tokens per doc and parses ja/nein. One untimed call of each side, then ``--rounds`` (>= 3)
rounds in alternating order (:mod:`_rounds`). Prints docs/s of each side (min/median/max), the share of docs
each path labels, the per-round ratio, and last ``ratio means: ...`` and ``ratio=<median>``.

    python benchmarks/bench_annotate.py [--docs 40] [--rounds 3] [--batch-size 8] [--max-tokens 8]
"""

from __future__ import annotations

import argparse
import time

from _rounds import print_ratio, report, rounds_arg, run_rounds

RATIO = "generate-and-parse seconds / verdict seconds, same docs, prompt and model (> 1: ours faster)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=40, help="docs per round (200 is slow on a shared 2-core box)")
    ap.add_argument("--rounds", type=rounds_arg, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=8, help="generation budget of the peer")
    ap.add_argument("--max-chars", type=int, default=600)
    args = ap.parse_args()

    from finemed.core.llm import LLMClient
    from finemed.core.verdicts import local_verdicts, parse_verdict
    from finemed.corpus.annotate import build_prompt, reservoir
    from finemed.corpus.readers import read_rows
    from finemed.corpus.sample_input import default_dev_input
    from finemed.models.smollm2 import ensure_model

    docs = reservoir(read_rows(default_dev_input()), args.docs, seed=0)
    msgs = [[{"role": "user", "content": build_prompt("de", d["text"], [], args.max_chars, 0)}] for d in docs]
    # engine hf: the verdict path reads logits in-process, so both sides run on transformers (with a vLLM venv
    # present, engine auto would serve the model over HTTP and the verdict path could not run locally)
    client = LLMClient(f"local:{ensure_model()}", max_tokens=args.max_tokens, batch_size=args.batch_size,
                       engine="hf")
    client.local_model()  # load once, shared by both sides
    labelled: dict[str, int] = {}

    def side(name: str):
        def once() -> float:
            t = time.perf_counter()
            if name == "verdict":
                got = [v.p_yes for v in local_verdicts(client, msgs)]
            else:
                got = [parse_verdict(r.text) for r in client.chat(msgs)]
            dt = time.perf_counter() - t
            labelled[name] = sum(x is not None for x in got)
            return dt
        return once

    res = run_rounds({"verdict": side("verdict"), "generate": side("generate")}, args.rounds, warmup=True,
                     unit=f"s for {len(msgs)} docs")
    for name, secs in res.values.items():
        report(f"{name} docs/s", [len(msgs) / s for s in secs], f"labelled={labelled[name]}/{len(msgs)}")
    ratios = res.ratios("generate", "verdict")  # seconds generate / verdict = verdict docs/s / generate docs/s
    report("verdict / generate docs/s", ratios)
    print_ratio(ratios, RATIO)


if __name__ == "__main__":
    main()

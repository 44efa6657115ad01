"""Annotate benchmark: verdicts by next-token probability vs the old generate-and-parse path.

Same docs (drawn from the dev input), same German prompt, same local SmolLM2, no cache. The verdict path
is one forward pass per batch (:func:`finemed.verdicts.local_verdicts`); the old path generates up
to ``--max-tokens`` tokens with :meth:`finemed.llm.LLMClient.chat` and parses ja/nein. Rounds alternate
the two paths. Prints docs/s (min/median/max), the share of docs each path labels, and
``ratio=<median verdict docs/s / median generation docs/s>`` last.

    python benchmarks/bench_annotate.py [--docs 40] [--rounds 3] [--batch-size 8] [--max-tokens 8]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=40, help="docs per round (200 is slow on a shared 2-core box)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=8, help="generation budget of the old path")
    ap.add_argument("--max-chars", type=int, default=600)
    args = ap.parse_args()

    from finemed.corpus.annotate import build_prompt, reservoir
    from finemed.corpus.readers import read_rows
    from finemed.corpus.sample_input import default_dev_input
    from finemed.llm import LLMClient
    from finemed.models.smollm2 import ensure_model
    from finemed.verdicts import local_verdicts, parse_verdict

    docs = reservoir(read_rows(default_dev_input()), args.docs, seed=0)
    msgs = [[{"role": "user", "content": build_prompt("de", d["text"], [], args.max_chars, 0)}] for d in docs]
    client = LLMClient(f"local:{ensure_model()}", max_tokens=args.max_tokens, batch_size=args.batch_size)
    client.local_model()
    local_verdicts(client, msgs[:2])  # warm-up
    rates: dict[str, list[float]] = {"verdict": [], "generate": []}
    labelled: dict[str, int] = {}
    for rnd in range(args.rounds):
        for name in (("verdict", "generate") if rnd % 2 == 0 else ("generate", "verdict")):
            t = time.perf_counter()
            if name == "verdict":
                got = [v.p_yes for v in local_verdicts(client, msgs)]
            else:
                got = [parse_verdict(r.text) for r in client.chat(msgs)]
            dt = time.perf_counter() - t
            rates[name].append(len(msgs) / dt)
            labelled[name] = sum(x is not None for x in got)
            print(f"round {rnd} {name:<8} {len(msgs)} docs in {dt:.1f}s = {len(msgs) / dt:.3f} docs/s", flush=True)
    for name, xs in rates.items():
        print(f"{name:<8} docs/s min={min(xs):.3f} median={statistics.median(xs):.3f} max={max(xs):.3f} "
              f"labelled={labelled[name]}/{len(msgs)}")
    print(f"ratio={statistics.median(rates['verdict']) / statistics.median(rates['generate']):.2f}")


if __name__ == "__main__":
    main()

"""Tokenizer benchmark: fertility + parity throughput (MB/s) vs raw ``tokenizers.Tokenizer.encode_batch``.

Same input for both: the SIB-200 sentences of EN/DE/FR/IT/ES (all splits), repeated ``--repeat`` times.
Ours is ``finemed.tokenizer.metrics.fertility_parity`` on a tokenizer from ``load_any_tokenizer`` (one batched
encode per language, word counts, per-sentence parity); the peer is the raw library call that only encodes,
``Tokenizer.from_file(...).encode_batch(texts)``. Each of ``--rounds`` (>= 3) rounds times both sides in
alternating order after one untimed call of each (:mod:`_rounds`); the per-round throughput ratio ours/peer
(= peer seconds / ours) is summarised as min/median/max. Differences in work: ours does more (five batched
encodes, one per language, plus word counts and per-sentence parity); the peer encodes all sentences in one
call. It also prints the ratio against the raw ``encode_batch_fast`` (no offsets) for reference. Last two
lines: ``ratio means: ...`` and ``ratio=<median>``.

    python benchmarks/bench_tokenizer.py [--tokenizer gpt-neox-20b] [--repeat 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import time

from _rounds import print_ratio, report, rounds_arg, run_rounds

RATIO = "tokenizers encode_batch seconds / ours (fertility + parity) seconds, same sentences (> 1: ours faster)"


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default="gpt-neox-20b", help="a bundled name or path with a tokenizer.json")
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--rounds", type=rounds_arg, default=5)
    args = parser.parse_args()

    from tokenizers import Tokenizer

    from finemed.data.loaders import load_sib200
    from finemed.data.tokenizers import load_any_tokenizer
    from finemed.tokenizer.metrics import fertility_parity

    langs = ["eng_Latn", "deu_Latn", "fra_Latn", "ita_Latn", "spa_Latn"]
    parallel = {lang: [s.text for s in load_sib200(lang)] * args.repeat for lang in langs}
    flat = [t for texts in parallel.values() for t in texts]
    mb = sum(len(t.encode("utf-8")) for t in flat) / 1e6

    ours_tok = load_any_tokenizer(args.tokenizer)
    raw = Tokenizer.from_file(ours_tok.source)  # the same tokenizer.json, straight from the library

    def ours() -> float:
        start = time.perf_counter()
        result = fertility_parity(ours_tok, parallel)
        assert result["deu_Latn"]["fertility"] > 0
        return time.perf_counter() - start

    def peer(fast: bool = False) -> float:
        start = time.perf_counter()
        encodings = (raw.encode_batch_fast if fast else raw.encode_batch)(flat, add_special_tokens=False)
        assert len(encodings) == len(flat)
        return time.perf_counter() - start

    # same numbers from both: total tokens per language agree
    check = fertility_parity(ours_tok, {"deu_Latn": parallel["deu_Latn"][:200]})["deu_Latn"]["fertility"]
    words = sum(len(t.split()) for t in parallel["deu_Latn"][:200])
    raw_tokens = sum(len(e.ids) for e in raw.encode_batch(parallel["deu_Latn"][:200], add_special_tokens=False))
    assert abs(check - raw_tokens / words) < 1e-12

    res = run_rounds({"ours": ours, "peer": peer, "fast": lambda: peer(fast=True)}, args.rounds, warmup=True,
                     unit="s")
    o, p = min(res.values["ours"]), min(res.values["peer"])
    print(f"input: {len(flat):,} sentences, {mb:.2f} MB, tokenizer {ours_tok.name}")
    print(f"ours  fertility+parity: {mb / o:.2f} MB/s (best {o:.3f}s)")
    print(f"peer  Tokenizer.encode_batch: {mb / p:.2f} MB/s (best {p:.3f}s)")
    report("ours/encode_batch_fast (reference)", res.ratios("fast", "ours"))
    ratios = res.ratios("peer", "ours")  # seconds peer / seconds ours = MB/s ours / MB/s peer
    report("ours/encode_batch throughput", ratios)
    print_ratio(ratios, RATIO)


if __name__ == "__main__":
    main()

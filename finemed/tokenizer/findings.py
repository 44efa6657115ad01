"""The paper's two findings, checked on a sweep's metrics.

1. An English-only tokenizer has a higher fertility on the other languages than a multilingual one of the
   same algorithm, library and size.
2. The multilingual tokenizer needs a larger vocabulary to reach the English-only one's English fertility.

Both read the trained tokenizers' records (corpus, algorithm, library, vocab size) and the eval table
(``tokenizer_metrics.json``).
"""

from __future__ import annotations

from finemed.tokenizer.train import TrainedTokenizer


def _index(trained: list[TrainedTokenizer]) -> dict[tuple[str, str, str, int], str]:
    return {(t.corpus, t.algorithm, t.library, t.vocab_size_asked): t.name for t in trained}


def english_only_vs_multi(metrics: dict, trained: list[TrainedTokenizer], en: str, multi: str,
                          langs: list[str]) -> list[dict]:
    """Per (algorithm, library, vocab, language): both fertilities and whether EN-only is higher."""
    idx, rows = _index(trained), []
    for (corpus, alg, lib, vocab), name in sorted(idx.items()):
        other = idx.get((multi, alg, lib, vocab))
        if corpus != en or other is None:
            continue
        for lang in langs:
            f_en, f_multi = metrics[name][lang]["fertility"], metrics[other][lang]["fertility"]
            rows.append({"algorithm": alg, "library": lib, "vocab_size": vocab, "lang": lang,
                         "fertility_en_only": f_en, "fertility_multi": f_multi, "en_only_higher": f_en > f_multi})
    return rows


def vocab_to_match_english(metrics: dict, trained: list[TrainedTokenizer], en: str, multi: str,
                           ref_lang: str = "eng_Latn") -> list[dict]:
    """For each EN-only tokenizer: the smallest multilingual vocab (same algorithm and library) whose English
    fertility is at most the EN-only one's; ``None`` when no size in the sweep reaches it."""
    idx, rows = _index(trained), []
    for (corpus, alg, lib, vocab), name in sorted(idx.items()):
        if corpus != en:
            continue
        target = metrics[name][ref_lang]["fertility"]
        sizes = sorted(v for (c, a, li, v) in idx if c == multi and a == alg and li == lib)
        match = next((v for v in sizes if metrics[idx[(multi, alg, lib, v)]][ref_lang]["fertility"] <= target), None)
        rows.append({"algorithm": alg, "library": lib, "vocab_size_en_only": vocab, "english_fertility": target,
                     "multi_vocab_needed": match, "ratio": (match / vocab) if match else None,
                     "multi_needs_larger": match is None or match > vocab})
    return rows


def findings_markdown(cmp_rows: list[dict], match_rows: list[dict], en: str, multi: str) -> str:
    lines = [f"## {en}-only vs {multi}: fertility on the other languages", "",
             f"| alg | lib | vocab | lang | fert {en} | fert {multi} | {en} higher |", "|---|---|---|---|---|---|---|"]
    for r in cmp_rows:
        lines.append(f"| {r['algorithm']} | {r['library']} | {r['vocab_size']} | {r['lang']} "
                     f"| {r['fertility_en_only']:.3f} | {r['fertility_multi']:.3f} "
                     f"| {'yes' if r['en_only_higher'] else 'NO'} |")
    lines += ["", f"## Vocab {multi} needs to reach {en}'s English fertility", "",
              f"| alg | lib | {en} vocab | English fertility | {multi} vocab needed | ratio |",
              "|---|---|---|---|---|---|"]
    for r in match_rows:
        need = r["multi_vocab_needed"] or "> sweep"
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "-"
        lines.append(f"| {r['algorithm']} | {r['library']} | {r['vocab_size_en_only']} | {r['english_fertility']:.3f} "
                     f"| {need} | {ratio} |")
    return "\n".join(lines) + "\n"

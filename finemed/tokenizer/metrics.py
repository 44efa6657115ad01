"""Intrinsic tokenizer metrics: fertility, parity (mean of ratios and ratio of sums), continued words,
bytes per token and vocabulary use.

No library computes these (the paper's own code is not packaged), so they are written here; the
encoding itself is always the tokenizer library's batched call, on batches of ``CHUNK`` sentences of which only
the counts are kept.

Definitions (tokens are counted without special tokens, no BOS/EOS):

- **words** come from a fixed pre-segmentation, the same for every language:
  ``whitespace`` = ``str.split()`` (runs of non-space characters; the paper's and SOURCES.md's definition);
  ``punct`` = runs of Unicode word characters, and runs of punctuation/symbols, each one word
  (``"Dr. Müller's"`` → ``Dr . Müller ' s``).
- **fertility** = total tokens / total words in the language.
- **parity** = mean over aligned sentences of tokens(L) / tokens(reference, English), skipping pairs whose
  reference has 0 tokens; **parity_sum** = total tokens(L) / total tokens(reference).
- **continued_words** = share of words that get ≥ 2 tokens. Tokens are assigned to words *in context*
  through the tokenizer's character offsets: a token belongs to the word holding its last character; a
  token of only whitespace or outside every word (SentencePiece's lone ``▁``, a space token, punctuation
  under ``whitespace`` never occurs) goes to the next word.
- **bytes_per_token** = UTF-8 bytes / tokens.
- **vocab_use** = distinct token ids seen / vocabulary size.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from finemed.core.config import FinemedError

WORD_PATTERNS = {"whitespace": re.compile(r"\S+"), "punct": re.compile(r"[^\W_]+|[^\w\s]+|_+")}
METRIC_KEYS = ("fertility", "parity", "parity_sum", "continued_words", "bytes_per_token")
CHUNK = 1000  # sentences encoded per batch: the encodings of one batch are in memory at a time


def check_words(words: str) -> re.Pattern:
    if words not in WORD_PATTERNS:
        raise FinemedError(f"--words {words!r} unknown; expected one of {', '.join(WORD_PATTERNS)}")
    return WORD_PATTERNS[words]


def word_spans(text: str, words: str = "whitespace") -> list[tuple[int, int]]:
    return [m.span() for m in check_words(words).finditer(text)]


def count_words(text: str, words: str = "whitespace") -> int:
    if words == "whitespace":
        return len(text.split())
    return sum(1 for _ in check_words(words).finditer(text))


def tokens_per_word(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """How many tokens each word gets, assigning tokens by their character offsets (module docstring)."""
    counts = [0] * len(spans)
    if not spans:
        return counts
    starts = [s for s, _ in spans]
    for start, end in offsets:
        pos = end - 1 if end > start else start
        i = bisect_right(starts, pos) - 1
        if i < 0 or pos >= spans[i][1]:
            i += 1  # whitespace or outside every word: the next word
        if i < len(spans):
            counts[i] += 1
    return counts


@dataclass
class LangCounts:
    """Raw counts of one tokenizer on one language; metrics derive from these."""

    tokens: list[int]  # per sentence
    words: int
    bytes: int
    continued: int = 0
    ids: set[int] = field(default_factory=set)

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)


def chunks(texts: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    """Consecutive slices of at most ``size`` texts (``size`` >= 1)."""
    if size < 1:
        raise FinemedError(f"chunk size {size} must be at least 1")
    for i in range(0, len(texts), size):
        yield texts[i:i + size]


def count_language(tok, texts: Sequence[str], words: str = "whitespace", *, with_words: bool = True,
                   chunk: int = CHUNK) -> LangCounts:
    """Encode ``texts`` in batches of ``chunk`` and count tokens, words, bytes (and, with ``with_words``, the
    continued words and the ids used, which need token offsets). Only the counts outlive a batch, so memory
    does not grow with the encodings of all texts; the counts are the same for any ``chunk``."""
    n_words = sum(count_words(t, words) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if not with_words:
        return LangCounts(tokens=[n for part in chunks(texts, chunk) for n in tok.count_batch(part)],
                          words=n_words, bytes=n_bytes)
    lengths, continued, used = [], 0, set()
    for part in chunks(texts, chunk):
        for text, (ids, offsets) in zip(part, tok.encode_batch_offsets(part)):
            lengths.append(len(ids))
            used.update(ids)
            continued += sum(1 for c in tokens_per_word(offsets, word_spans(text, words)) if c >= 2)
    return LangCounts(tokens=lengths, words=n_words, bytes=n_bytes, continued=continued, ids=used)


def fertility(counts: LangCounts) -> float:
    if counts.words == 0:
        raise FinemedError("fertility is undefined: the eval texts have no words")
    return counts.total_tokens / counts.words


def parity(counts: LangCounts, ref: LangCounts) -> tuple[float, float, int]:
    """(mean of per-sentence ratios, ratio of sums, pairs skipped because the reference had 0 tokens)."""
    if len(counts.tokens) != len(ref.tokens):
        raise FinemedError(f"parity needs aligned sentences: {len(counts.tokens)} vs {len(ref.tokens)} "
                           f"in the reference")
    ratios = [a / b for a, b in zip(counts.tokens, ref.tokens) if b > 0]
    if not ratios:
        raise FinemedError("parity is undefined: the reference sentences have no tokens")
    return sum(ratios) / len(ratios), counts.total_tokens / ref.total_tokens, len(counts.tokens) - len(ratios)


def language_metrics(counts: LangCounts, ref: LangCounts | None) -> dict[str, float | None]:
    """The five per-language numbers of tokenizer_metrics.json (parity ``None`` without a reference language)."""
    mean_ratio, sum_ratio = (parity(counts, ref)[:2]) if ref is not None else (None, None)
    return {
        "fertility": fertility(counts),
        "parity": mean_ratio,
        "parity_sum": sum_ratio,
        "continued_words": counts.continued / counts.words if counts.words else 0.0,
        "bytes_per_token": counts.bytes / counts.total_tokens if counts.total_tokens else 0.0,
    }


def fertility_parity(tok, parallel: dict[str, Sequence[str]], ref_lang: str = "eng_Latn",
                     words: str = "whitespace", *, chunk: int = CHUNK) -> dict[str, dict[str, float]]:
    """Only fertility and both parities, from batched token counts over all languages (no offsets, batches of
    ``chunk`` texts): the fast path."""
    flat = [t for texts in parallel.values() for t in texts]
    lengths = [n for part in chunks(flat, chunk) for n in tok.count_batch(part)]
    counts, pos = {}, 0
    for lang, texts in parallel.items():
        n = len(texts)
        counts[lang] = LangCounts(tokens=lengths[pos:pos + n], words=sum(count_words(t, words) for t in texts),
                                  bytes=0)
        pos += n
    ref = counts.get(ref_lang)
    out = {}
    for lang, c in counts.items():
        p, q = parity(c, ref)[:2] if ref is not None else (None, None)
        out[lang] = {"fertility": fertility(c), "parity": p, "parity_sum": q}
    return out

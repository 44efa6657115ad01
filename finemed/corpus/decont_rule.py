"""The decontamination rule: cut matched benchmark spans out (lm-eval's janitor), drop only leaked items (PaLM).

A doc is compared with the benchmark index (:mod:`finemed.corpus.decont`) on word ``n``-grams (13):

1. **Normalisation** (lm-eval janitor's, made Unicode-aware): NFKC, casefold, split on whitespace, delete every
   non-alphanumeric character inside a word. Digits are kept: ``0,4 mg/dl`` and ``0.4 mg/dl`` give the same
   key (only the formatting is normalised), ``12 U/l`` and ``80 U/l`` do not. datatrove's ``simplify_text``
   maps every number to 0, which made any two lab panels or date lines match; it is not used here.
2. **Ignored n-grams**: boilerplate, i.e. an n-gram found in ``max_item_df`` or more distinct benchmark items
   (``Sehr geehrte Frau Kollegin, sehr geehrter Herr Kollege, wir berichten über ...`` opens 7 GerMedBench
   letters), and n-grams whose words are mostly numbers and units (``max_numeric_share``: lab panels, dates,
   dosage tables).
3. **Drop** (PaLM, Chowdhery et al. 2022, sec. 8): when one benchmark item has ``leak_share`` (70%) or more of
   its n-grams in the doc, the doc is a copy of it and is dropped. Every n-gram of the item counts here.
4. **Cut** (lm-eval ``janitor.py`` after GPT-3): every other matched, non-ignored n-gram is cut out of the doc
   with ``window_chars`` (200) either side; overlapping cuts merge. A doc that needs more than ``max_cuts``
   (10) separate cuts, or has nothing left, is dropped (janitor's ``too_dirty_cutoff``); otherwise the doc is
   kept, changed, its pieces joined by a newline.

So a single shared 13-gram never drops a doc: it costs the doc one cut of about 400 characters.

Optional (``max_corpus_df``, off by default): n-grams shared by that many docs of the same pass are corpus
boilerplate and are not cut (:mod:`finemed.corpus.decont_filter` counts them). It is off because it also spares a
benchmark item copied onto many pages, the leak that matters most: on the dev split of
:mod:`finemed.corpus.decont_measure`, ``max_corpus_df=2`` let 2 of 14 planted 80-word excerpts through (two docs
carried overlapping excerpts of one item), and 3 or 5 spared no clean doc that item frequency had not spared.

Why by hand: lm-eval's ``Janitor`` is the reference for step 4, but it keeps a plain set of n-grams (no item
frequency, so no boilerplate rule and no PaLM coverage), lowercases ASCII only, counts every matched n-gram as a
"piece" (a 25-word excerpt already exceeds its cutoff of 10) and prints a warning on every call without its C++
extension. datatrove's ``NGramsDecontFilter`` drops on the first shared n-gram after ``simplify_text``. Neither
has the rule above; the n-gram hash is datatrove's (xxhash64).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class RuleSettings(Protocol):
    """The thresholds the rule reads (``finemed.corpus.decont.DecontConfig`` has them, with their defaults)."""

    n_grams: int
    max_item_df: int
    max_numeric_share: float
    leak_share: float
    window_chars: int
    max_cuts: int


_WORD = re.compile(r"\S+")
_STRIP = re.compile(r"[\W_]+")
# normalised unit words (``U/l`` -> ``ul``): an n-gram made mostly of these and numbers is a lab value or dosage
UNITS = frozenset(
    "mg g kg µg ug mcg ng pg ml l dl ul µl u iu ie mmol mmoll µmoll umoll mgdl gdl gl mgl µgl ngml pgml "
    "mmhg cm mm m min h std s sec mval meq fl gptl tptl mosmkg mlmin mlmin173m2 bpm x".split())


def normalise(word: str) -> str:
    return _STRIP.sub("", unicodedata.normalize("NFKC", word).casefold())


def tokens(text: str) -> list[tuple[str, int, int]]:
    """(normalised word, start char, end char) for each whitespace word that keeps a letter or digit."""
    out = []
    for m in _WORD.finditer(text):
        w = normalise(m.group())
        if w:
            out.append((w, m.start(), m.end()))
    return out


def ngram_keys(words: list[str], n: int) -> list[str]:
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def numeric_share(words: list[str]) -> float:
    return sum(any(c.isdigit() for c in w) or w in UNITS for w in words) / max(len(words), 1)


@dataclass
class DecontIndex:
    """The benchmark n-grams: sorted unique hashes, each with its item frequency and (CSR) the items holding it."""

    hashes: np.ndarray  # uint64, sorted, unique
    item_df: np.ndarray  # int32: distinct benchmark items holding each hash
    offsets: np.ndarray  # int64, len(hashes) + 1: items[offsets[i]:offsets[i + 1]] hold hashes[i]
    items: np.ndarray  # int32 item ids
    item_ngrams: np.ndarray  # int32: distinct n-grams per item (PaLM's denominator)
    item_names: list[str] = field(default_factory=list)

    @classmethod
    def from_items(cls, item_hashes: list[set[int]], names: list[str]) -> "DecontIndex":
        pairs = sorted((h, i) for i, hs in enumerate(item_hashes) for h in hs)
        hs = np.array([p[0] for p in pairs], dtype=np.uint64)
        its = np.array([p[1] for p in pairs], dtype=np.int32)
        uniq, start, counts = np.unique(hs, return_index=True, return_counts=True)
        offsets = np.append(start, len(hs)).astype(np.int64)
        return cls(uniq, counts.astype(np.int32), offsets, its,
                   np.array([len(h) for h in item_hashes], dtype=np.int32), list(names))

    def save(self, path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, hashes=self.hashes, item_df=self.item_df, offsets=self.offsets, items=self.items,
                     item_ngrams=self.item_ngrams, item_names=np.array(self.item_names, dtype=object))

    @classmethod
    def load(cls, path) -> "DecontIndex":
        z = np.load(path, allow_pickle=True)  # our own file, written by save() above
        return cls(z["hashes"], z["item_df"], z["offsets"], z["items"], z["item_ngrams"], list(z["item_names"]))

    def lookup(self, doc_hashes: np.ndarray) -> np.ndarray:
        """Index position of each hash, -1 where the benchmark does not have it."""
        if not len(self.hashes) or not len(doc_hashes):
            return np.full(len(doc_hashes), -1, dtype=np.int64)
        pos = np.searchsorted(self.hashes, doc_hashes).clip(0, len(self.hashes) - 1)
        return np.where(self.hashes[pos] == doc_hashes, pos, -1)


@dataclass
class Decision:
    action: str  # keep | cut | drop
    text: str
    cuts: int = 0
    cut_chars: int = 0
    item: str | None = None  # the most-covered benchmark item
    coverage: float = 0.0  # its share of n-grams found in the doc
    reason: str = ""


def hash_func():
    from datatrove.utils.hashing import HashConfig, create_hash_func

    return create_hash_func(HashConfig(precision=64, hash_fc="xxhash"))


def item_hashes(text: str, n: int, hasher) -> set[int]:
    return {hasher(k) for k in ngram_keys([w for w, _, _ in tokens(text)], n)}


@dataclass
class Match:
    """A doc's n-grams found in the index: token spans, and for each shared n-gram its index position."""

    toks: list[tuple[str, int, int]]
    at: np.ndarray  # token offsets of shared n-grams
    pos: np.ndarray  # their index positions
    item: str | None = None
    coverage: float = 0.0

    def candidates(self, index: DecontIndex, cfg: RuleSettings) -> set[int]:
        """Index positions of the shared n-grams the rule would cut (not boilerplate, not mostly numbers)."""
        words = [w for w, _, _ in self.toks]
        return {int(p) for i, p in zip(self.at, self.pos) if index.item_df[p] < cfg.max_item_df
                and numeric_share(words[i:i + cfg.n_grams]) < cfg.max_numeric_share}


def match(text: str, index: DecontIndex, cfg: RuleSettings, hasher) -> Match | None:
    """The doc's shared n-grams and its most-covered item, or None when it shares none."""
    n = cfg.n_grams
    toks = tokens(text)
    if len(toks) < n:
        return None
    doc_hashes = np.fromiter((hasher(k) for k in ngram_keys([w for w, _, _ in toks], n)), dtype=np.uint64)
    pos = index.lookup(doc_hashes)
    at = np.flatnonzero(pos >= 0)
    if not len(at):
        return None
    found: dict[int, int] = {}  # item -> distinct n-grams of it found in the doc
    for p in np.unique(pos[at]):
        for item in index.items[index.offsets[p]:index.offsets[p + 1]]:
            found[int(item)] = found.get(int(item), 0) + 1
    best = max(found, key=lambda i: found[i] / max(int(index.item_ngrams[i]), 1))
    name = index.item_names[best] if best < len(index.item_names) else str(best)
    return Match(toks, at, pos[at], name, round(found[best] / max(int(index.item_ngrams[best]), 1), 4))


def resolve(text: str, m: Match | None, index: DecontIndex, cfg: RuleSettings,
            frequent: set[int] | frozenset = frozenset()) -> Decision:
    """Drop, cut or keep a doc from its :class:`Match`; ``frequent``: index positions to ignore (corpus boilerplate)."""
    if m is None:
        return Decision("keep", text)
    if m.coverage >= cfg.leak_share:
        return Decision("drop", text, item=m.item, coverage=m.coverage, reason="decontaminated")
    cut = m.candidates(index, cfg) - set(frequent)
    spans: list[list[int]] = []
    for i, p in zip(m.at, m.pos):
        if int(p) not in cut:
            continue
        start = max(0, m.toks[i][1] - cfg.window_chars)
        end = min(len(text), m.toks[i + cfg.n_grams - 1][2] + cfg.window_chars)
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    info = {"item": m.item, "coverage": m.coverage}
    if not spans:
        return Decision("keep", text, **info)
    cut_chars = sum(end - start for start, end in spans)
    if len(spans) > cfg.max_cuts:
        return Decision("drop", text, cuts=len(spans), cut_chars=cut_chars, reason="decontaminated", **info)
    pieces, last = [], 0
    for start, end in spans:
        pieces.append(text[last:start].strip())
        last = end
    pieces.append(text[last:].strip())
    kept = "\n".join(piece for piece in pieces if piece)
    if not kept:
        return Decision("drop", text, cuts=len(spans), cut_chars=cut_chars, reason="decontaminated", **info)
    return Decision("cut", kept, cuts=len(spans), cut_chars=cut_chars, **info)


def decide(text: str, index: DecontIndex, cfg: RuleSettings, hasher,
           frequent: set[int] | frozenset = frozenset()) -> Decision:
    """What the rule (module docstring) does with one doc."""
    return resolve(text, match(text, index, cfg, hasher), index, cfg, frequent)

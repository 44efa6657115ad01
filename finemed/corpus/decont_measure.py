"""Measure decontamination on clean clinical text: what the old rule and the new one drop, change and let through.

``python -m finemed.corpus.decont_measure [--split dev|test] [--set max_item_df=5 ...]`` prints one JSON object.

Clean docs: the 42 bundled GraSCCo letters, and half of GerMedBench's 150 case texts (``patient_text``,
``med_extraction``, ``icd10_coding``; a row is held out when :func:`finemed.core.texts.heldout_score` of its task/id,
seed 1, is below 0.5). Held-out rows are taken OUT of the benchmark index for this measurement (it holds the
other half, all MCQ items, GerMedIQ and XQuAD/MLQA), so they are unseen letters and case texts that share letter
boilerplate, lab panels and doses with indexed items, the failure the rule must not repeat. Clean docs are split
dev/test by ``heldout_score`` of their id (seed 0); thresholds were chosen on ``dev``; ``test`` was read after.

Planted: into each clean doc of the split, one excerpt of 15, 25, 40 and 80 words (in turn) from an indexed
benchmark item (case texts, MCQ items, XQuAD/MLQA contexts) is pasted mid-doc. An excerpt ``leaks`` when the doc
is kept and any of its non-ignored n-grams (not boilerplate, not mostly numbers) is still in the output. The
letter opening and a lab panel are also pasted into clean docs: those must not be dropped.

The old rule is the code at commit ffcf0b2, re-run in-process: datatrove's ``simplify_text`` + German word
tokenizer + 13-gram hashes of every eval string; any shared n-gram drops the doc.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from typing import Any

import numpy as np

from finemed.core.texts import heldout_score
from finemed.corpus.decont import DecontConfig, eval_texts, index_from_items, named_items, row_items
from finemed.corpus.decont_rule import (
    Decision,
    DecontIndex,
    hash_func,
    match,
    ngram_keys,
    numeric_share,
    resolve,
    tokens,
)
from finemed.data import loaders

EXCERPT_WORDS = (15, 25, 40, 80)
BOILERPLATE = ("Sehr geehrte Frau Kollegin, sehr geehrter Herr Kollege, wir berichten über unseren gemeinsamen "
               "Patienten, Herrn Klaus Berger, der sich vom 03.04. bis 11.04. in unserer Behandlung befand.")
LAB_PANEL = "Labor bei Entlassung: GGT 12 U/l AP 80 U/l Bilirubin gesamt 0,4 mg/dl Kreatinin 1,1 mg/dl CRP 4 mg/l."


CASE_TASKS = ("patient_text", "med_extraction", "icd10_coding")


def _case_rows() -> list[tuple[str, dict]]:
    return [(f"germedbench/{t}/{r['id']}", r) for t in CASE_TASKS for r in loaders.load_germedbench(t)]


def _held_out(name: str) -> bool:
    return heldout_score(name, seed=1) < 0.5


def benchmark_items(cfg: DecontConfig) -> list[tuple[str, str]]:
    """The index for this measurement: the default sets with the held-out GerMedBench cases left out."""
    items = [it for it in named_items(cfg) if not it[0].startswith("benchmark:germedbench#")]
    items += [(f"germedbench/med_qa#{i}", t) for i, t in enumerate(eval_texts("benchmark:germedbench/med_qa"))]
    for task in CASE_TASKS:
        for r in loaders.load_germedbench(task):
            name = f"germedbench/{task}/{r['id']}"
            if not _held_out(name):
                items += [(f"{name}#{k}", t) for k, t in enumerate(row_items(r))]
    return items


def clean_docs(split: str) -> list[tuple[str, str]]:
    docs = [(f"grascco/{d.id}", d.text) for d in loaders.load_grascco()]
    docs += [(name, r["text"]) for name, r in _case_rows() if _held_out(name)]
    return [(i, t) for i, t in docs if (heldout_score(i) < 0.5) == (split == "dev")]


def excerpt_sources(items: list[tuple[str, str]]) -> list[str]:
    """Indexed benchmark items long enough for an 80-word excerpt (GerMedBench, XQuAD/MLQA German)."""
    keep = ("benchmark:germedbench", "germedbench/", "builtin:xquad.de#", "builtin:mlqa.de#")
    return [t for name, t in items if name.startswith(keep) and len(t.split()) >= 100]


def old_rule(cfg: DecontConfig, items: list[tuple[str, str]]):
    """ffcf0b2's rule: datatrove normalisation, any shared 13-gram drops. Returns ``text -> dropped``."""
    from datatrove.utils.text import TextNormConfig, ngrams, simplify_text
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    tok, norm = load_word_tokenizer("deu"), TextNormConfig()

    def grams(text: str) -> set[str]:
        return {" ".join(g) for g in ngrams(tok.word_tokenize(simplify_text(text, norm)), cfg.n_grams)}

    index: set[str] = set()
    for _, text in items:
        index |= grams(text)
    return lambda text: bool(grams(text) & index)


def leaks(excerpt: str, output: str, index: DecontIndex, cfg: DecontConfig, hasher) -> bool:
    """Whether a non-ignored n-gram of ``excerpt`` is still in ``output``."""
    words = [w for w, _, _ in tokens(excerpt)]
    out = set(ngram_keys([w for w, _, _ in tokens(output)], cfg.n_grams))
    for i, key in enumerate(ngram_keys(words, cfg.n_grams)):
        pos = int(index.lookup(np.array([hasher(key)], dtype=np.uint64))[0])
        ignored = pos >= 0 and index.item_df[pos] >= cfg.max_item_df
        if key in out and not ignored and numeric_share(words[i:i + cfg.n_grams]) < cfg.max_numeric_share:
            return True
    return False


def decide_all(texts: list[str], index: DecontIndex, cfg: DecontConfig, hasher) -> list[Decision]:
    """The filter's decisions for a pass over ``texts``, with the corpus counts when ``max_corpus_df`` is set."""
    matches = [match(t, index, cfg, hasher) for t in texts]
    frequent: set[int] = set()
    if cfg.max_corpus_df is not None:
        counts = Counter(p for m in matches if m is not None and m.coverage < cfg.leak_share
                         for p in m.candidates(index, cfg))
        frequent = {p for p, c in counts.items() if c >= cfg.max_corpus_df}
    return [resolve(t, m, index, cfg, frequent) for t, m in zip(texts, matches)]


def _plant(text: str, insert: str) -> str:
    cut = text.find(" ", len(text) // 2)
    cut = len(text) if cut < 0 else cut
    return f"{text[:cut]}\n{insert}\n{text[cut:]}"


def measure(split: str = "dev", overrides: dict[str, Any] | None = None, with_old: bool = True) -> dict:
    cfg = DecontConfig(**(overrides or {}))
    items = benchmark_items(cfg)
    index, hasher = index_from_items(items, cfg.n_grams), hash_func()
    docs = clean_docs(split)
    rng = random.Random(0)
    sources = excerpt_sources(items)
    report: dict[str, Any] = {"split": split, "clean_docs": len(docs), "config": cfg.model_dump(exclude={"sets"}),
                              "index_items": len(index.item_names)}
    new = decide_all([t for _, t in docs], index, cfg, hasher)
    report["new_rule"] = {"dropped": sum(d.action == "drop" for d in new),
                          "changed": sum(d.action == "cut" for d in new),
                          "cut_chars": sum(d.cut_chars for d in new if d.action == "cut"),
                          "chars": sum(len(t) for _, t in docs),
                          "dropped_ids": [i for (i, _), d in zip(docs, new) if d.action == "drop"]}
    old = old_rule(cfg, items) if with_old else None
    if old is not None:
        report["old_rule"] = {"dropped": sum(old(t) for _, t in docs), "changed": 0}
    excerpts, texts = [], []
    for k, (_, text) in enumerate(docs):
        n = EXCERPT_WORDS[k % len(EXCERPT_WORDS)]
        words = rng.choice(sources).split()
        start = rng.randrange(0, len(words) - n)
        excerpts.append((n, " ".join(words[start:start + n])))
        texts.append(_plant(text, excerpts[-1][1]))
    planted: dict[str, dict[str, int]] = {}
    for (n, excerpt), text, d in zip(excerpts, texts, decide_all(texts, index, cfg, hasher)):
        row = planted.setdefault(f"{n}_words", {"planted": 0, "dropped": 0, "cut": 0, "leaked": 0, "old_dropped": 0})
        row["planted"] += 1
        row["dropped"] += d.action == "drop"
        row["cut"] += d.action == "cut"
        row["leaked"] += d.action != "drop" and leaks(excerpt, d.text, index, cfg, hasher)
        row["old_dropped"] += bool(old and old(text))
    report["planted"] = planted
    for name, insert in (("boilerplate", BOILERPLATE), ("lab_panel", LAB_PANEL)):
        texts = [_plant(t, insert) for _, t in docs]
        ds = decide_all(texts, index, cfg, hasher)
        report[f"planted_{name}"] = {"docs": len(ds), "dropped": sum(d.action == "drop" for d in ds),
                                     "changed": sum(d.action == "cut" for d in ds),
                                     "old_dropped": sum(old(t) for t in texts) if old else None}
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--set", action="append", default=[], help="a DecontConfig field, e.g. max_item_df=5")
    ap.add_argument("--no-old", action="store_true", help="skip the old rule (slower: spaCy tokenizer)")
    args = ap.parse_args(argv)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    print(json.dumps(measure(args.split, overrides, not args.no_old), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

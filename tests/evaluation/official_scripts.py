"""The official QA scoring, written out in the tests from the scripts' text, independent of finemed.

- SQuAD v1.1 ``evaluate-v1.1.py`` (rajpurkar/SQuAD-explorer): lower-case, drop ``string.punctuation``, drop
  ``a|an|the`` as whole words, collapse whitespace; token F1 from the multiset intersection; max over golds;
  a missing prediction scores 0 and stays in the denominator.
- MLQA v1 ``mlqa_evaluation_v1.py`` (facebookresearch/MLQA): the same steps in the same order (lower, punctuation,
  articles, whitespace) with PUNCT = every Unicode ``P*`` character plus ``string.punctuation``, and per-language
  articles; German: ``ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des``.

- ROUGE-L (Lin 2004): the LCS of the normalised token lists, F = 2PR/(P+R) with P = LCS/|pred|, R = LCS/|gold|.

Neither script is a package (SQuAD's is a CodaLab file, MLQA's is CC BY-NC), so the tests carry their own copy
and finemed's ``qa_metrics`` is checked against it, never against itself. Only the languages the tests use
(en, de, es) are written out.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter

SQUAD_PUNCT = set(string.punctuation)
MLQA_PUNCT = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")} | SQUAD_PUNCT
MLQA_ARTICLES = {"en": r"\b(a|an|the)\b", "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
                 "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"}


def squad_normalize(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in SQUAD_PUNCT)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def mlqa_normalize(s: str, lang: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in MLQA_PUNCT)
    return " ".join(t for t in re.sub(MLQA_ARTICLES[lang], " ", s).split() if t.strip())


def normalize(s: str, lang: str, metric: str) -> str:
    return squad_normalize(s) if metric == "squad" else mlqa_normalize(s, lang)


def em(pred: str, gold: str, lang: str, metric: str) -> float:
    return float(normalize(pred, lang, metric) == normalize(gold, lang, metric))


def f1(pred: str, gold: str, lang: str, metric: str) -> float:
    p, g = normalize(pred, lang, metric).split(), normalize(gold, lang, metric).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def rouge_l(pred: str, gold: str, lang: str, metric: str) -> float:
    p, g = normalize(pred, lang, metric).split(), normalize(gold, lang, metric).split()
    row = [0] * (len(g) + 1)  # LCS by dynamic programming, one row at a time
    for a in p:
        prev, row = row, [0]
        for j, b in enumerate(g):
            row.append(prev[j] + 1 if a == b else max(prev[j + 1], row[j]))
    lcs = row[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(g)
    return 2 * precision * recall / (precision + recall)


def evaluate(golds_by_id: dict[str, list[str]], predictions: dict[str, str], lang: str, metric: str) -> dict:
    """The scripts' ``evaluate``: corpus EM and F1 (and ROUGE-L) in percent."""
    total_em = total_f1 = total_rl = 0.0
    for qid, golds in golds_by_id.items():
        if qid not in predictions:
            continue
        total_em += max(em(predictions[qid], g, lang, metric) for g in golds)
        total_f1 += max(f1(predictions[qid], g, lang, metric) for g in golds)
        total_rl += max(rouge_l(predictions[qid], g, lang, metric) for g in golds)
    n = len(golds_by_id)
    return {"exact_match": 100.0 * total_em / n, "f1": 100.0 * total_f1 / n, "rougeL": 100.0 * total_rl / n}

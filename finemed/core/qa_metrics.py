"""Extractive-QA metrics with the semantics of the official scripts: EM, token F1, ROUGE-L.

Re-implemented because neither script is a library (SQuAD's ``evaluate-v1.1.py`` is a CodaLab file; MLQA's
``mlqa_evaluation_v1.py`` is CC BY-NC and cannot be vendored). ``transformers.data.metrics.squad_metrics`` is
the SQuAD v2 script (different empty-answer rule) and has no per-language normalisation.

- ``squad`` (SQuAD v1.1): lower-case, drop ``string.punctuation``, drop ``a|an|the``, collapse whitespace.
- ``mlqa`` (MLQA v1): lower-case, drop every Unicode punctuation character (category P*) plus
  ``string.punctuation``, drop the answer language's articles (de: ein|eine|einen|einem|eines|einer|der|die|das|
  den|dem|des; en: a|an|the; es: un|una|unos|unas|el|la|los|las; vi and ar as in the script; none for hi/zh),
  whitespace tokens (mixed CJK segmentation for zh).
- EM and F1 are maximised over the gold answers. F1 is 0 when no token is shared (so an empty prediction
  against an empty normalised gold scores EM 1, F1 0, exactly as in v1.1).
- A question without a prediction scores 0 and stays in the denominator; predictions for unknown ids are ignored.
- ROUGE-L is ``rouge_score``'s LCS F-measure on the same normalised tokens (its default tokenizer would delete
  non-ASCII letters such as ä/ö/ü/ß), maximised over golds.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Iterable, Mapping

from finemed.core.config import FinemedError

SQUAD_PUNCT = frozenset(string.punctuation)
MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "ar": r"\sال^|ال",
    "hi": None,
    "zh": None,
}
WHITESPACE_LANGS = {"en", "es", "hi", "vi", "de", "ar"}
METRICS = ("squad", "mlqa")
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def default_metric(lang: str) -> str:
    """SQuAD v1.1 for English, MLQA for every other language (the issue's rule)."""
    return "squad" if lang == "en" else "mlqa"


def _check(lang: str, metric: str) -> None:
    if metric not in METRICS:
        raise FinemedError(f"QA metric {metric!r} unknown; use squad or mlqa")
    if metric == "mlqa" and lang not in MLQA_ARTICLES:
        raise FinemedError(f"language {lang!r} has no MLQA normalisation; "
                           f"use one of {', '.join(sorted(MLQA_ARTICLES))}")


def is_mlqa_punct(ch: str) -> bool:
    """MLQA's punctuation: ASCII punctuation or any Unicode ``P*`` character (checked per character, so no
    table of all code points is built when the CLI starts)."""
    return ch in SQUAD_PUNCT or unicodedata.category(ch).startswith("P")


def _mixed_segmentation(text: str) -> list[str]:
    out, buf = [], ""
    for ch in text:
        if _CJK.search(ch) or is_mlqa_punct(ch):
            if buf:
                out.extend(buf.split())
                buf = ""
            out.append(ch)
        else:
            buf += ch
    if buf:
        out.extend(buf.split())
    return out


@lru_cache(maxsize=65536)
def normalize_answer(s: str, lang: str = "en", metric: str = "squad") -> str:
    """The official normalisation of ``metric`` (``squad`` ignores ``lang``: English rules)."""
    s = s.lower()
    if metric == "squad":
        s = "".join(ch for ch in s if ch not in SQUAD_PUNCT)
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())
    _check(lang, metric)
    s = "".join(ch for ch in s if not is_mlqa_punct(ch))
    pattern = MLQA_ARTICLES[lang]
    if pattern:
        s = re.sub(pattern, " ", s)
    tokens = s.split() if lang in WHITESPACE_LANGS else _mixed_segmentation(s)
    return " ".join(t for t in tokens if t.strip())


def exact_match(pred: str, gold: str, lang: str = "en", metric: str = "squad") -> float:
    return float(normalize_answer(pred, lang, metric) == normalize_answer(gold, lang, metric))


def f1(pred: str, gold: str, lang: str = "en", metric: str = "squad") -> float:
    p = normalize_answer(pred, lang, metric).split()
    g = normalize_answer(gold, lang, metric).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


class _NormTokenizer:
    """rouge_score tokenizer protocol: ``tokenize(text) -> list[str]`` on normalised tokens."""

    def __init__(self, lang: str, metric: str):
        self.lang, self.metric = lang, metric

    def tokenize(self, text: str) -> list[str]:
        return normalize_answer(text, self.lang, self.metric).split()


@lru_cache(maxsize=16)
def _rouge_scorer(lang: str, metric: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_NormTokenizer(lang, metric))


def rouge_l(pred: str, gold: str, lang: str = "en", metric: str = "squad") -> float:
    return _rouge_scorer(lang, metric).score(gold, pred)["rougeL"].fmeasure


def max_over_golds(fn, pred: str, golds: Iterable[str], lang: str, metric: str) -> float:
    golds = list(golds)
    return max((fn(pred, g, lang, metric) for g in golds), default=0.0)


def score_one(pred: str | None, golds: Iterable[str], lang: str = "en", metric: str | None = None) -> dict[str, float]:
    """Per-question scores in [0, 1]; ``pred=None`` (missing) scores 0 on every metric."""
    metric = metric or default_metric(lang)
    _check(lang, metric)
    golds = list(golds)
    if pred is None:
        return {"exact_match": 0.0, "f1": 0.0, "rougeL": 0.0}
    return {"exact_match": max_over_golds(exact_match, pred, golds, lang, metric),
            "f1": max_over_golds(f1, pred, golds, lang, metric),
            "rougeL": max_over_golds(rouge_l, pred, golds, lang, metric)}


def score_predictions(examples, predictions: Mapping[str, str], lang: str,
                      metric: str | None = None) -> dict[str, float]:
    """Corpus EM / F1 / ROUGE-L in percent over ``examples`` (QAExample-like: ``.id``, ``.answers``).

    Like the official scripts: a missing prediction counts 0 and stays in the denominator; extra ids are ignored.
    """
    examples = list(examples)
    if not examples:
        raise FinemedError("QA scoring: the dataset has no questions; check the data file")
    totals = Counter()
    for ex in examples:
        pred = predictions.get(ex.id)
        for k, v in score_one(None if pred is None else str(pred), ex.answers, lang, metric).items():
            totals[k] += v
    n = len(examples)
    return {k: 100.0 * totals[k] / n for k in ("exact_match", "f1", "rougeL")}

"""Does an intrinsic metric predict downstream scores? Spearman and Pearson correlation, with n.

Scores come as a CSV with a ``tokenizer`` column and one or more score columns; the metric is read from a
``tokenizer_metrics.json`` (``{tokenizer: {lang: {metric: x}}}``). scipy computes the coefficients and p-values.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel

from finemed.core.config import FinemedError
from finemed.tokenizer.metrics import METRIC_KEYS


class Correlation(BaseModel):
    metric: str
    lang: str
    score: str
    n: int
    spearman: float
    spearman_p: float
    pearson: float
    pearson_p: float
    tokenizers: list[str]


def read_scores(path: Path) -> dict[str, dict[str, float]]:
    """``{score_column: {tokenizer: value}}`` from a CSV with a ``tokenizer`` column."""
    if not path.is_file():
        raise FinemedError(f"scores CSV {path} does not exist; pass a CSV with a 'tokenizer' column and score columns")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "tokenizer" not in rows[0]:
        raise FinemedError(f"{path}: needs a header with a 'tokenizer' column and at least one score column")
    out: dict[str, dict[str, float]] = {}
    for lineno, row in enumerate(rows, 2):
        for col, val in row.items():
            if col == "tokenizer" or val in ("", None):
                continue
            try:
                out.setdefault(col, {})[row["tokenizer"]] = float(val)
            except ValueError:
                raise FinemedError(f"{path}:{lineno}: {col}={val!r} is not a number") from None
    return out


def correlate(metrics: dict, scores: dict[str, dict[str, float]], *, metric: str = "fertility",
              lang: str = "deu_Latn") -> list[Correlation]:
    """One :class:`Correlation` per score column over the tokenizers present in both inputs."""
    from scipy.stats import pearsonr, spearmanr

    if metric not in METRIC_KEYS:
        raise FinemedError(f"metric {metric!r} unknown; expected one of {', '.join(METRIC_KEYS)}")
    out = []
    for col, per_tok in scores.items():
        names = [n for n in per_tok if n in metrics and lang in metrics[n] and metrics[n][lang][metric] is not None]
        if len(names) < 3:
            raise FinemedError(f"score {col!r}: only {len(names)} tokenizers are in both the scores and the metrics "
                               f"for {lang}; correlation needs at least 3")
        x = [metrics[n][lang][metric] for n in names]
        y = [per_tok[n] for n in names]
        s, p = spearmanr(x, y)
        r, q = pearsonr(x, y)
        out.append(Correlation(metric=metric, lang=lang, score=col, n=len(names), spearman=float(s),
                               spearman_p=float(p), pearson=float(r), pearson_p=float(q), tokenizers=names))
    return out

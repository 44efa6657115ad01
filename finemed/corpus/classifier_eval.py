"""Splits, threshold tuning, P/R/F1 and the PR-curve PNG for the domain classifiers.

The split is stratified by source: every source (GraSCCo, GerMedIQ, fortunes, XQuAD, …) contributes
the same share to train/valid/test, and a doc and its near-duplicates (same ``group``) always land in
the same split, so a near-duplicate never leaks a test doc into training. The threshold is tuned on
``valid`` for a target precision and then reported on the untouched ``test`` split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from finemed.core.artifacts import atomic_path


class Prf(BaseModel):
    threshold: float
    precision: float
    recall: float
    f1: float
    support_pos: int
    support_neg: int


def _bucket(key: str, seed: int) -> float:
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_by_source(rows: list[dict], fractions=(0.6, 0.2, 0.2), seed: int = 0) -> dict[str, list[dict]]:
    """Stratified by ``source`` (near-duplicate suffix stripped), grouped by ``group`` (or ``id``)."""
    by_source: dict[str, list[str]] = {}
    for r in rows:
        src = str(r.get("source", "")).replace("+neardup", "")
        g = str(r.get("group") or r["id"])
        by_source.setdefault(src, [])
        if g not in by_source[src]:
            by_source[src].append(g)
    assign: dict[str, str] = {}
    for src, groups in by_source.items():
        groups = sorted(groups, key=lambda g: _bucket(g, seed))
        n = len(groups)
        n_train = round(n * fractions[0])
        n_valid = round(n * fractions[1])
        for i, g in enumerate(groups):
            assign.setdefault(g, "train" if i < n_train else "valid" if i < n_train + n_valid else "test")
    out: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for r in rows:
        out[assign[str(r.get("group") or r["id"])]].append(r)
    return out


def prf_at(y: np.ndarray, scores: np.ndarray, threshold: float) -> Prf:
    pred = scores >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Prf(threshold=float(threshold), precision=round(p, 4), recall=round(r, 4), f1=round(f1, 4),
               support_pos=int((y == 1).sum()), support_neg=int((y == 0).sum()))


def tune_threshold(y: np.ndarray, scores: np.ndarray, target_precision: float) -> float:
    """Lowest threshold whose precision is ≥ target (max recall); the max-precision one if none is."""
    from sklearn.metrics import precision_recall_curve

    prec, _rec, thr = precision_recall_curve(y, scores)
    ok = np.where(prec[:-1] >= target_precision)[0]
    if len(ok):
        return float(thr[ok[0]])
    return float(thr[int(np.argmax(prec[:-1]))])


def recall_threshold(y: np.ndarray, scores: np.ndarray, target_recall: float) -> float:
    """Highest threshold whose recall is ≥ target (for the cascade's prefilter)."""
    pos = np.sort(scores[y == 1])
    if len(pos) == 0:
        return 0.0
    k = int(np.floor((1 - target_recall) * len(pos)))
    return float(pos[min(k, len(pos) - 1)])


def plot_pr_curve(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: dict[str, Prf], out: Path,
                  title: str = "domain classifier: precision-recall (test split)") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, (y, s) in curves.items():
        prec, rec, _ = precision_recall_curve(y, s)
        ax.plot(rec, prec, label=name)
    for name, pt in points.items():
        ax.scatter([pt.recall], [pt.precision], zorder=3)
        ax.annotate(f"{name} t={pt.threshold:.2f}", (pt.recall, pt.precision), fontsize=8,
                    xytext=(4, -10), textcoords="offset points")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out

"""How far to trust LLM labels: P/R/F1 with bootstrap CIs, calibration of P(yes), the confusion matrix.

The DeFineMed way: the labels are compared with gold/human labels on docs the prompt and threshold were
not chosen on; every number has a 95% bootstrap interval; the calibration plot shows whether P(yes) means
what it says; each error type comes with examples to read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finemed.core.artifacts import atomic_path


def prf(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    pr = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    return pr, rc, (2 * pr * rc / (pr + rc) if pr + rc else 0.0)


def bootstrap_prf(y: np.ndarray, p: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Precision, recall and F1 of predictions ``p`` against ``y``, each with a 95% bootstrap CI."""
    y, p = np.asarray(y), np.asarray(p)
    point = prf(y, p)
    rng = np.random.default_rng(seed)
    boots = np.array([prf(y[idx], p[idx]) for idx in (rng.integers(0, len(y), len(y)) for _ in range(n_boot))])
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    return {name: {"value": round(point[i], 4), "ci95": [round(lo[i], 4), round(hi[i], 4)]}
            for i, name in enumerate(("precision", "recall", "f1"))} | {"n": int(len(y))}


def confusion(rows: list[dict], per_type: int = 3, chars: int = 300) -> dict:
    """Counts of tp/fp/fn/tn over rows with ``gold`` and ``label``, and examples of each error type."""
    kinds = {(1, 1): "tp", (0, 1): "fp", (1, 0): "fn", (0, 0): "tn"}
    out: dict = {k: 0 for k in kinds.values()}
    examples: dict[str, list[dict]] = {"fp": [], "fn": []}
    # the most confident errors first: those are the ones worth reading
    ranked = sorted(rows, key=lambda r: -abs((r.get("p_yes") if r.get("p_yes") is not None else 0.5) - 0.5))
    for r in ranked:
        kind = kinds[(int(r["gold"]), int(r["label"]))]
        out[kind] += 1
        if kind in examples and len(examples[kind]) < per_type:
            examples[kind].append({"id": r["id"], "p_yes": r.get("p_yes"), "source": r.get("source"),
                                   "text": str(r["text"])[:chars]})
    return {**out, "examples": examples}


def calibration(y: np.ndarray, p_yes: np.ndarray, bins: int = 10) -> dict:
    """Reliability bins of P(yes) (mean predicted, observed share of positives, count) and the ECE."""
    y, p_yes = np.asarray(y, dtype=float), np.asarray(p_yes, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p_yes, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            pred, obs = float(p_yes[m].mean()), float(y[m].mean())
            ece += m.sum() / len(y) * abs(pred - obs)
            rows.append({"lo": round(edges[b], 2), "hi": round(edges[b + 1], 2), "mean_p_yes": round(pred, 4),
                         "share_positive": round(obs, 4), "n": int(m.sum())})
    auc = None
    if 0 < y.sum() < len(y):
        from sklearn.metrics import roc_auc_score

        auc = round(float(roc_auc_score(y, p_yes)), 4)
    return {"bins": rows, "ece": round(float(ece), 4), "roc_auc": auc, "n": int(len(y))}


def plot_calibration(calib: dict, threshold: float | None, path: Path, title: str) -> Path:
    """The reliability diagram of P(yes) with the doc count per bin and the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    xs = [b["mean_p_yes"] for b in calib["bins"]]
    ax.plot(xs, [b["share_positive"] for b in calib["bins"]], marker="o", label=f"LLM (ECE {calib['ece']:.3f})")
    if threshold is not None:
        for a in (ax, axh):
            a.axvline(threshold, color="red", lw=1, ls=":")
    ax.set_ylabel("share gold-positive")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    axh.bar([(b["lo"] + b["hi"]) / 2 for b in calib["bins"]], [b["n"] for b in calib["bins"]], width=0.09)
    axh.set_xlabel("P(yes)")
    axh.set_ylabel("docs")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)

"""``finemed corpus quality-report``: does quality filtering destroy the domain? Per filter and setting.

On the dev input (German docs only), each quality filter runs alone under three settings:
``datatrove_default`` (the classes' defaults, German word splitting), ``german_base`` (German stop
words, alpha ratio 0.7) and ``domain_aware`` (base, relaxed where the classifier's score ≥
``relax_threshold``), plus the three filters chained. It reports the survival of the medical
positives and of the other German docs, and up to 3 dropped examples per rule under ``domain_aware``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import get_filter_result

from finemed.artifacts import atomic_write_json
from finemed.corpus.quality import DomainAwareFilter, QualityConfig


def _settings(cfg: QualityConfig) -> dict[str, dict[str, DomainAwareFilter]]:
    out = {}
    for setting in ("datatrove_default", "german_base", "domain_aware"):
        out[setting] = {}
        for kind in cfg.enabled:
            base = {} if setting == "datatrove_default" else cfg.base.get(kind, {})
            relaxed = cfg.relaxed.get(kind) if setting == "domain_aware" else None
            out[setting][kind] = DomainAwareFilter(kind, base, relaxed, cfg.relax_threshold, cfg.language)
    return out


def run_quality_report(input_path: str | None, out: Path, classifier: str | None = None,
                       cfg: QualityConfig | None = None, examples_per_rule: int = 3) -> dict:
    from finemed.corpus.domain import load_scorer
    from finemed.corpus.readers import read_rows
    from finemed.corpus.sample_input import default_dev_input
    from finemed.corpus.train_classifier import cached_default_classifier

    cfg = cfg or QualityConfig()
    rows = [r for r in read_rows(input_path or default_dev_input()) if r.get("medical") in (0, 1)]
    scorer = load_scorer(classifier or cached_default_classifier())
    scores = scorer.score([r["text"] for r in rows])
    classes = {1: "medical", 0: "german_other"}
    n = defaultdict(int)
    for r in rows:
        n[classes[r["medical"]]] += 1
    survival: dict[str, dict[str, dict[str, float]]] = {}
    dropped: dict[str, list[dict]] = defaultdict(list)
    for setting, filters in _settings(cfg).items():
        kept = defaultdict(lambda: defaultdict(int))
        for r, s in zip(rows, scores):
            alive = True
            for kind, f in filters.items():
                doc = Document(text=r["text"], id=str(r["id"]), metadata={"domain_score": float(s)})
                ok, reason = get_filter_result(f.filter(doc))
                if ok:
                    kept[kind][classes[r["medical"]]] += 1
                else:
                    alive = False
                    if setting == "domain_aware" and len(dropped[reason]) < examples_per_rule:
                        dropped[reason].append({"source": r.get("source"), "domain_score": round(float(s), 3),
                                                "text": r["text"][:300]})
            if alive:
                kept["chained"][classes[r["medical"]]] += 1
        survival[setting] = {k: {c: round(v[c] / n[c], 4) for c in n} for k, v in kept.items()}
    res = {"docs": dict(n), "survival": survival, "dropped_examples_domain_aware": dict(dropped),
           "relax_threshold": cfg.relax_threshold}
    atomic_write_json(Path(out) / "quality_report.json", res)
    return res

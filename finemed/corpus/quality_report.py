"""Stage ``corpus.quality_report``: does quality filtering destroy the domain? Per filter and setting.

On the dev input (German docs only), each quality filter runs alone under three settings:
``datatrove_default`` (the classes' defaults, German word splitting), ``german_base`` (German stop
words, alpha ratio 0.7) and ``domain_aware`` (base, relaxed where the classifier's score ≥
``relax_threshold``), plus the filters chained. It reports the survival of the medical positives and of
the other German docs, and writes up to ``examples_per_rule`` dropped examples per rule under
``domain_aware`` to ``DIR/quality_report.json``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from finemed.core.artifacts import atomic_write_json
from finemed.core.config import StageConfig
from finemed.core.logs import progress
from finemed.core.plan_estimates import CPU_S, cpu
from finemed.core.stages import StageResult, planner, stage
from finemed.corpus.corpus_plan import docs_in
from finemed.corpus.quality import QUALITY_KINDS, QualityConfig
from finemed.corpus.registry import heavy
from finemed.corpus.rows import read_rows
from finemed.corpus.sample_input import default_dev_input
from finemed.corpus.scorers import load_scorer
from finemed.corpus.train_classifier import cached_default_classifier

SETTINGS = ("datatrove_default", "german_base", "domain_aware")
CLASSES = {1: "medical", 0: "german_other"}


class QualityReportConfig(StageConfig):
    input: str | None = None  # dev-input-style parquet dir with a ``medical`` column; None: the dev input
    classifier: str | None = None  # a train-classifier dir; None: the cached default fastText
    filters: list[str] = Field(default_factory=lambda: list(QUALITY_KINDS))
    quality: QualityConfig = Field(default_factory=QualityConfig)
    examples_per_rule: int = 3


class QualityReportResult(StageResult):
    key_metric: ClassVar[str] = "survival.domain_aware.chained.medical"
    docs: dict[str, int]
    survival: dict[str, dict[str, dict[str, float]]]  # setting -> filter (or "chained") -> class -> rate
    relax_threshold: float | None
    report: str


def _settings(cfg: QualityReportConfig) -> dict[str, dict]:
    aware = heavy("quality_filters").DomainAwareFilter  # datatrove: imported when the report runs
    q = cfg.quality
    out = {}
    for setting in SETTINGS:
        out[setting] = {}
        for kind in cfg.filters:
            base = {} if setting == "datatrove_default" else q.base.get(kind, {})
            relaxed = q.relaxed.get(kind) if setting == "domain_aware" else None
            out[setting][kind] = aware(kind, base, relaxed, q.relax_threshold, q.language)
    return out


@stage("corpus.quality_report")
def run(cfg: QualityReportConfig, run_dir: Path) -> QualityReportResult:
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import get_filter_result

    rows = [r for r in read_rows(cfg.input or default_dev_input()) if r.get("medical") in (0, 1)]
    scores = load_scorer(cfg.classifier or cached_default_classifier()).score([r["text"] for r in rows])
    n: dict[str, int] = defaultdict(int)
    for r in rows:
        n[CLASSES[r["medical"]]] += 1
    survival: dict[str, dict[str, dict[str, float]]] = {}
    dropped: dict[str, list[dict]] = defaultdict(list)
    for setting, filters in _settings(cfg).items():
        kept: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for r, s in progress(list(zip(rows, scores)), f"quality filters, {setting}"):
            alive = True
            for kind, f in filters.items():
                doc = Document(text=r["text"], id=str(r["id"]), metadata={"domain_score": float(s)})
                ok, reason = get_filter_result(f.filter(doc))
                if ok:
                    kept[kind][CLASSES[r["medical"]]] += 1
                    continue
                alive = False
                if setting == "domain_aware" and len(dropped[reason]) < cfg.examples_per_rule:
                    dropped[reason].append({"source": r.get("source"), "domain_score": round(float(s), 3),
                                            "text": r["text"][:300]})
            if alive:
                kept["chained"][CLASSES[r["medical"]]] += 1
        survival[setting] = {k: {c: round(v[c] / n[c], 4) for c in n} for k, v in kept.items()}
    report = Path(run_dir) / "quality_report.json"
    res = QualityReportResult(docs=dict(n), survival=survival, relax_threshold=cfg.quality.relax_threshold,
                              report=str(report))
    atomic_write_json(report, {**res.model_dump(mode="json", exclude={"report"}),
                               "dropped_examples_domain_aware": dict(dropped)})
    return res


@planner("corpus.quality_report")
def plan(cfg: QualityReportConfig, ctx) -> dict:
    """``finemed plan``: CPU only: the quality filters and the classifier over the input's docs."""
    docs, how = docs_in(cfg.input, ctx)
    return {"docs": docs, "docs_source": how, **cpu((docs or 0) * CPU_S["corpus_doc"]), "disk_gib": 0.0,
            "assumes": "~15 ms of CPU per doc (the corpus pipeline's rate); a report and examples only"}

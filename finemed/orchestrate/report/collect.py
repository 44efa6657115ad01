"""Gather what a recipe run wrote, for the HTML report: each stage's manifest and result (``metrics.json``), the
PNGs it saved, and the few JSON files a section needs (the corpus funnel's ``stats.json``, CPT's
``log_history.json``, failure-mode examples). Nothing is recomputed: a number in the report is a number a stage
wrote. Stages are grouped into the report's sections by kind; a section with no stage is marked "not run".
"""

from __future__ import annotations

import base64
import platform
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from finemed.core.artifacts import read_json, read_manifest
from finemed.orchestrate.report.board import BoardView, read_board

# section id → (title, stage-kind prefixes or kinds, what the section shows)
SECTIONS: list[tuple[str, str, tuple[str, ...], str]] = [
    ("scoreboard", "Scoreboard", ("eval.scoreboard",),
     "every model of the chain on every measure; each delta against the instruct model with its paired bootstrap "
     "CI, marked by the CI, not by the sign"),
    ("corpus", "Corpus funnel", ("corpus.build", "corpus.sample_input", "corpus.quality_report", "corpus.pii_eval"),
     "documents kept after each block, drop reasons with examples"),
    ("labels", "LLM labels and the domain classifier", ("corpus.annotate", "corpus.train_classifier",
                                                        "corpus.cascade"),
     "zero-shot label agreement, classifier P/R at the tuned threshold"),
    ("tokenizer", "Tokenizers", ("tokenizer.",), "fertility, parity and training cost"),
    ("cpt", "Continual pre-training", ("train.cpt",), "training loss and held-out bits per byte"),
    ("merge", "Merge sweep", ("merge.",), "domain bpb against the instruction probe, the chosen t"),
    ("distill", "Knowledge distillation", ("train.distill", "train.cache_logits"),
     "student retention of the teacher's scores, parameter reduction"),
    ("qa", "QA, MCQ and bpb", ("eval.qa", "eval.mcq", "eval.bpb"), "exact match, F1, ROUGE-L, accuracy, bpb"),
    ("generate", "Generated answers", ("eval.generate",), "answers of our own models on the prompt set"),
    ("winrates", "Judge win-rates", ("eval.pairwise", "eval.winrates"),
     "pairwise win-rate heatmap, Bradley-Terry ranking, fold-change"),
    ("failures", "Failure modes", ("eval.failures",), "language mixing and verbosity, with example answers"),
    ("findings", "Findings against the paper", ("papers.",),
     "each paper experiment's findings table (also in docs/results/), which claims hold in miniature"),
]
EXTRA_JSON = {"corpus.build": "stats.json", "train.cpt": "log_history.json"}
MAX_IMAGES = 12


class StageView(BaseModel):
    name: str
    kind: str
    status: str
    seconds: float | None = None
    config_hash: str = ""
    seed: int | None = None
    result: Any = None
    images: list[tuple[str, str]] = []  # (file name, data URI)
    extra: Any = None
    versions: dict[str, str] = {}
    error: str | None = None
    findings_html: str | None = None  # a ``papers.*`` stage's findings.md, rendered


class Section(BaseModel):
    id: str
    title: str
    what: str
    stages: list[StageView]


class ReportData(BaseModel):
    recipe: str
    run_dir: str
    sections: list[Section]
    other: list[StageView]
    plan: Any = None
    machine: dict[str, str]
    versions: dict[str, str]
    board: BoardView | None = None  # the scoreboard stage's table, shown first


def _images(stage_dir: Path) -> list[tuple[str, str]]:
    out = []
    for png in sorted(stage_dir.glob("*.png"))[:MAX_IMAGES]:
        out.append((png.name, "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")))
    return out


def _findings_html(stage_dir: Path) -> str | None:
    md = stage_dir / "findings.md"
    if not md.is_file():
        return None
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(md.read_text(encoding="utf-8"))


def stage_view(stage_dir: Path, name: str | None = None, kind: str | None = None) -> StageView:
    manifest = read_manifest(stage_dir)
    metrics = stage_dir / "metrics.json"
    result = read_json(metrics) if metrics.is_file() else (manifest.result if manifest else None)
    kind = kind or (manifest.kind if manifest else "") or "unknown"
    extra_name = EXTRA_JSON.get(kind)
    extra = read_json(stage_dir / extra_name) if extra_name and (stage_dir / extra_name).is_file() else None
    return StageView(name=name or stage_dir.name, kind=kind, status=manifest.status if manifest else "not run",
                     seconds=manifest.seconds if manifest else None,
                     config_hash=manifest.config_hash if manifest else "", result=result,
                     seed=manifest.config.get("seed") if manifest and isinstance(manifest.config, dict) else None,
                     images=_images(stage_dir) if stage_dir.is_dir() else [], extra=extra,
                     versions=manifest.versions if manifest else {}, error=manifest.error if manifest else None,
                     findings_html=_findings_html(stage_dir) if stage_dir.is_dir() else None)


def _listed_stages(run_dir: Path) -> list[tuple[str, str]]:
    """(name, kind) from summary.json in recipe order, else every subdir that holds a manifest."""
    summary = run_dir / "summary.json"
    if summary.is_file():
        return [(s["stage"], s["kind"]) for s in read_json(summary).get("stages", [])]
    found = []
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        manifest = read_manifest(sub)
        if manifest is not None:
            found.append((sub.name, manifest.kind))
    return found


def _section_of(kind: str) -> str | None:
    for sid, _, kinds, _ in SECTIONS:
        if any(kind == k or (k.endswith(".") and kind.startswith(k)) for k in kinds):
            return sid
    return None


def collect(run_dir: Path | str, planned: list[tuple[str, str]] | None = None) -> ReportData:
    """Everything the report shows for ``run_dir``; ``planned`` (name, kind) marks stages of the recipe not run."""
    run_dir = Path(run_dir)
    stages = _listed_stages(run_dir)
    for name, kind in planned or []:
        if name not in {n for n, _ in stages}:
            stages.append((name, kind))
    views = [stage_view(run_dir / name, name, kind) for name, kind in stages]
    sections = [Section(id=sid, title=title, what=what, stages=[v for v in views if _section_of(v.kind) == sid])
                for sid, title, _, what in SECTIONS]
    other = [v for v in views if _section_of(v.kind) is None]
    plan = read_json(run_dir / "plan.json") if (run_dir / "plan.json").is_file() else None
    versions: dict[str, str] = {}
    for v in views:
        versions.update(v.versions)
    machine = {"python": platform.python_version(), "platform": platform.platform(),
               "processor": platform.processor() or platform.machine()}
    board = next((b for v in views if v.kind == "eval.scoreboard" for b in [read_board(run_dir / v.name)] if b),
                 None)
    return ReportData(recipe=run_dir.name, run_dir=str(run_dir), sections=sections, other=other, plan=plan,
                      machine=machine, versions=versions, board=board)

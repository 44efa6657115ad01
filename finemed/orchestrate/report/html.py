"""``finemed report RUN_DIR``: one self-contained HTML page (jinja2, plots embedded as PNG) from the JSON and PNG
files a recipe run wrote. The scoreboard (``eval.scoreboard``: models against measures) comes first; then one
short section per stage (its summary and key numbers, the funnel, curves and plots), the raw result fields behind a
fold. Sections: corpus funnel, labels and classifier, tokenizers, CPT curves, merge sweep,
KD retention, QA/MCQ, generated answers, win-rates, failure modes, plan against actual time, and the manifest.
A section whose stages did not run says so. The only plots drawn here are from logged series (CPT's loss and
held-out bpb in ``log_history.json``); every number is read, none recomputed.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from finemed.core.artifacts import atomic_write_text
from finemed.orchestrate.report.board import PLUMBING, drawable
from finemed.orchestrate.report.collect import ReportData, collect

TEMPLATE_DIR = Path(__file__).parent / "templates"
MAX_ROWS = 30


def rows(value: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Flatten a result into (dotted key, short value) rows: scalars only, long lists summarised."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, (dict, list)) and depth < 3:
                out += rows(v, key, depth + 1)
            else:
                out.append((key, fmt(v)))
    elif isinstance(value, list):
        if value and all(not isinstance(v, (dict, list)) for v in value) and len(value) <= 12:
            out.append((prefix, ", ".join(fmt(v) for v in value)))
        else:
            out.append((prefix, f"{len(value)} items"))
    else:
        out.append((prefix or "value", fmt(value)))
    return out[:MAX_ROWS * 3]


HIGHLIGHTS = 8


def highlights(result: Any) -> list[tuple[str, str]]:
    """What a reader needs first from a stage result: its ``summary``, then its top-level scalars (numbers, flags,
    short texts that are not file paths), at most ``HIGHLIGHTS``; everything else stays behind the raw fold."""
    if not isinstance(result, dict):
        return []
    out = [("summary", drawable(result["summary"]))] if isinstance(result.get("summary"), str) else []
    for k, v in result.items():
        if k == "summary" or isinstance(v, (dict, list)) or v is None:
            continue
        if isinstance(v, str) and (len(v) > 160 or "/" in v):
            continue
        out.append((k.replace("_", " "), drawable(fmt(v))))
    return out[:HIGHLIGHTS]


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v)
    return text if len(text) <= 160 else text[:157] + "..."


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def cpt_curves(log_history: list[dict]) -> str | None:
    """Training loss and every logged held-out bpb series against the step, as one embedded PNG."""
    if not log_history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    bpb_keys = sorted({k for h in log_history for k in h if "bpb" in k})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    if loss:
        ax1.plot(*zip(*loss), marker=".")
    ax1.set(title="training loss", xlabel="step")
    for key in bpb_keys:
        pts = [(h["step"], h[key]) for h in log_history if key in h and "step" in h]
        ax2.plot(*zip(*pts), marker="o", label=key)
    ax2.set(title="held-out bits per byte", xlabel="step")
    if bpb_keys:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    uri = _png(fig)
    plt.close(fig)
    return uri


def render(data: ReportData) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), autoescape=select_autoescape(["html", "jinja"]))
    env.filters["rows"] = rows
    env.filters["fmt"] = fmt
    env.filters["drawable"] = drawable
    env.filters["highlights"] = highlights
    for section in data.sections:
        for stage in section.stages:
            if stage.kind == "train.cpt" and isinstance(stage.extra, list):
                curve = cpt_curves(stage.extra)
                if curve:
                    stage.images.insert(0, ("cpt_curves.png", curve))
    plumbing_stages = [data.board.judge_stage] if data.board and data.board.judge_plumbing else []
    return env.get_template("report.html.jinja").render(d=data, max_rows=MAX_ROWS, plumbing=PLUMBING,
                                                        plumbing_stages=plumbing_stages)


def write_report(run_dir: Path | str, out: Path | str | None = None,
                 planned: list[tuple[str, str]] | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``); return its path."""
    run_dir = Path(run_dir)
    path = Path(out) if out else run_dir / "report.html"
    atomic_write_text(path, render(collect(run_dir, planned)))
    return path

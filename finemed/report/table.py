"""The recipe runner's closing table (stage, status, time, key metric), printed with rich."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from finemed import stages
from finemed.artifacts import StageOutcome


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value) if not isinstance(value, (list, tuple)) else json.dumps(value)


def print_summary(recipe_name: str, kinds: dict[str, str], outcomes: list[StageOutcome], summary_path: Path) -> None:
    """One row per stage: name, status, seconds and its key metric (from the recipe as run, overrides included)."""
    table = Table(title=f"finemed run {recipe_name}")
    for col in ("stage", "status", "time (s)", "key metric"):
        table.add_column(col)
    for o in outcomes:
        metric = stages.get(kinds[o.stage]).metric
        table.add_row(o.stage, o.status, f"{o.seconds:.1f}", f"{metric}: {_fmt(stages.dig(o.result, metric))}")
    console = Console()
    console.print(table)
    console.print(f"summary: {summary_path}")

"""The recipe runner's closing table (stage, status, time, key metric), printed with rich."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from finemed.artifacts import StageOutcome


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value) if not isinstance(value, (list, tuple)) else json.dumps(value)


def print_summary(recipe_path: Path, outcomes: list[StageOutcome], runs_dir: Path | None = None) -> None:
    from finemed.recipe import STAGES, _dig, load_recipe

    recipe = load_recipe(recipe_path)
    kinds = {s.name: s.kind for s in recipe.stages}
    table = Table(title=f"finemed run {recipe.name}")
    for col in ("stage", "status", "time (s)", "key metric"):
        table.add_column(col)
    for o in outcomes:
        metric = STAGES[kinds[o.stage]].metric
        table.add_row(o.stage, o.status, f"{o.seconds:.1f}", f"{metric}: {_fmt(_dig(o.result, metric))}")
    console = Console()
    console.print(table)
    console.print(f"summary: {Path(runs_dir or recipe.runs_dir) / recipe.name / 'summary.json'}")

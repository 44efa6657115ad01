"""The recipe runner's closing table (stage, status, time, key metric), then the scoreboard, printed with rich."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from finemed.core import stages
from finemed.core.artifacts import StageOutcome
from finemed.orchestrate.report.board import PLUMBING, BoardView, read_board


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value) if not isinstance(value, (list, tuple)) else json.dumps(value)


def board_table(board: BoardView) -> Table:
    """The scoreboard as a rich table: measures against models, each delta vs the baseline with its CI verdict."""
    table = Table(title=f"scoreboard (deltas vs {board.baseline}, {100 * board.ci:.0f}% paired bootstrap CI)",
                  caption=board.judge)
    for col in ("measure", *board.models, "chance"):
        table.add_column(col)
    style = {"better": "green", "worse": "red", "not testable here": "dim"}
    for r in board.rows:
        cells = []
        for c in r.cells:
            text = c.value + (f"\n{c.delta} {c.verdict}" if c.delta else "")
            cells.append(f"[{style[c.verdict]}]{text}[/]" if c.verdict in style else text)
        table.add_row(f"{r.measure}\n({r.direction})", *cells, r.chance or "-")
    return table


def print_summary(recipe_name: str, kinds: dict[str, str], outcomes: list[StageOutcome], summary_path: Path) -> None:
    """One row per stage: name, status, seconds and its key metric (from the recipe as run, overrides included);
    then the scoreboard, where the recipe has an ``eval.scoreboard`` stage that finished."""
    boards = [read_board(summary_path.parent / o.stage) for o in outcomes if kinds[o.stage] == "eval.scoreboard"]
    board = next((b for b in boards if b is not None), None)
    plumbing = board.judge_stage if board and board.judge_plumbing else None
    table = Table(title=f"finemed run {recipe_name}")
    for col in ("stage", "status", "time (s)", "key metric"):
        table.add_column(col)
    for o in outcomes:
        metric = stages.get(kinds[o.stage]).metric
        shown = PLUMBING if o.stage == plumbing else f"{metric}: {_fmt(stages.dig(o.result, metric))}"
        table.add_row(o.stage, o.status, f"{o.seconds:.1f}", shown)
    console = Console()
    console.print(table)
    if board is not None:
        if board.selection:
            console.print(f"[red]{board.selection}[/]" if board.guard_failed else board.selection)
        console.print(board_table(board))
        for note in board.notes:
            console.print(f"MCQ length bias: {note}")
    console.print(f"summary: {summary_path}")


def print_plan(plan) -> None:
    """The plan: one row per stage (cached, inputs, held-out sizes, estimate), then the totals."""
    table = Table(title=f"finemed plan {plan.recipe} (MFU {plan.mfu:.0%} on {plan.gpu})")
    for col in ("stage", "kind", "cached", "inputs", "held-out", "estimate"):
        table.add_column(col)
    for p in plan.stages:
        inputs = "\n".join(f"{k}: {v}" for k, v in p.inputs.items())
        table.add_row(p.name, p.kind, "yes" if p.cached else "no", inputs, _fmt(p.heldout) if p.heldout else "-",
                      _fmt(p.estimate) if p.estimate else "-")
    console = Console()
    console.print(table)
    totals = Table(title="totals")
    for col in plan.totals:
        totals.add_column(col)
    totals.add_row(*(_fmt(v) for v in plan.totals.values()))
    console.print(totals)
    for problem in plan.problems:
        console.print(f"[red]problem:[/red] {problem}")

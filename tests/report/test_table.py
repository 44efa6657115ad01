"""The CLI summary: the stage table, then the scoreboard; an embedded judge's stage says "judge: plumbing only"
instead of a ranking."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from finemed.core.artifacts import StageOutcome, atomic_write_json
from finemed.orchestrate.report import table
from finemed.orchestrate.report.board import board_view

sys.path.insert(0, str(Path(__file__).parent))
from test_html import MEASURES, board_json  # noqa: E402


def test_summary_ends_with_the_scoreboard_and_hides_the_plumbing_judges_ranking(tmp_path, monkeypatch):
    atomic_write_json(tmp_path / "scoreboard" / "scoreboard.json", board_json())
    outcomes = [StageOutcome(stage="judge", status="complete", seconds=1.0, result={"top": "cpt"}),
                StageOutcome(stage="scoreboard", status="complete", seconds=0.1, result={"summary": "s"})]
    kinds = {"judge": "eval.pairwise", "scoreboard": "eval.scoreboard"}
    console = Console(record=True, width=220)
    monkeypatch.setattr(table, "Console", lambda: console)
    table.print_summary("demo", kinds, outcomes, tmp_path / "summary.json")
    text = console.export_text()
    assert "judge: plumbing only" in text and "top: cpt" not in text
    assert text.index("finemed run demo") < text.index("scoreboard (deltas vs instruct, 95% paired bootstrap CI)")
    assert text.index("scoreboard (deltas vs instruct") < text.rindex("summary: ")
    for row in board_view(board_json()).rows:
        assert row.measure in text
    assert text.count("worse") == len(MEASURES) and text.count("unchanged") == len(MEASURES)
    assert "not scored" in text  # the student has no probe score


def test_no_scoreboard_stage_no_scoreboard_table(tmp_path, monkeypatch):
    outcomes = [StageOutcome(stage="judge", status="complete", seconds=1.0, result={"top": "cpt"})]
    console = Console(record=True, width=160)
    monkeypatch.setattr(table, "Console", lambda: console)
    table.print_summary("demo", {"judge": "eval.pairwise"}, outcomes, tmp_path / "summary.json")
    text = console.export_text()
    assert "top: cpt" in text and "scoreboard (" not in text

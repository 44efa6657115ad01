"""The scoreboard as rows of text cells, for the HTML report and the CLI summary alike (one format, two printers).

It reads ``scoreboard.json`` (written by ``eval.scoreboard``) and formats it: one row per measure, one column per
model, each non-baseline cell with its delta against the baseline, the paired-bootstrap CI and the verdict the CI
gives. Nothing is recomputed here.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from finemed.core.artifacts import read_json
from finemed.evaluation.scoreboard import PLUMBING, ROLES


class Cell(BaseModel):
    value: str
    delta: str = ""
    verdict: str = ""  # better | worse | unchanged | not testable here | no CI | "" (the baseline, or not scored)


class BoardRow(BaseModel):
    measure: str
    direction: str  # "higher is better" / "lower is better"
    chance: str = ""
    cells: list[Cell]


class BoardView(BaseModel):
    models: list[str]
    baseline: str
    rows: list[BoardRow]
    judge: str  # "judge: plumbing only ...", "judge: <spec>" or "judge: not run"
    judge_plumbing: bool
    judge_stage: str = ""  # the eval.pairwise stage the judge line is about
    ci: float
    not_in_recipe: list[str] = []
    notes: list[str] = []  # MCQ length bias, one line per task and model
    selection: str = ""  # what the merge sweep handed on (its QA dev guard), shown first
    guard_failed: bool = False


def _num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _signed(v: float) -> str:
    return ("+" if v > 0 else "") + _num(v, 3)


def _letters(counts: dict[str, int] | None) -> str:
    return " ".join(f"{k}:{v}" for k, v in (counts or {}).items()) or "-"


def board_view(board: dict[str, Any]) -> BoardView:
    """Text cells of ``scoreboard.json``: models in chain order, measures in the order they were read."""
    models = [r for r in ROLES if r in board["models"]]
    base = board.get("baseline", "instruct")
    rows = []
    for key, meta in board["measures"].items():
        cells = []
        for role in models:
            value = board["models"][role].get(key)
            d = board.get("deltas", {}).get(role, {}).get(key)
            if value is None:
                cells.append(Cell(value="not scored"))
            elif d is None:
                cells.append(Cell(value=_num(value)))
            else:
                ci = f" [{_signed(d['lo'])}, {_signed(d['hi'])}]" if d.get("lo") is not None else ""
                cells.append(Cell(value=_num(value), delta=f"{_signed(d['delta'])}{ci}", verdict=d["verdict"]))
        rows.append(BoardRow(measure=meta["label"], cells=cells,
                             direction="higher is better" if meta["higher_is_better"] else "lower is better",
                             chance="" if meta.get("chance") is None else _num(meta["chance"])))
    judge = board.get("judge", {})
    plumbing = judge.get("status") == PLUMBING
    text = (f"{PLUMBING}: {judge.get('note', '')}" if plumbing else
            f"judge: {judge['judge']}" if judge.get("judge") else "judge: not run")
    notes = [f"{task} {role}: acc picks the shortest option in {100 * b['acc_picks_shortest']:.0f}% of "
             f"{b['n']} items, acc_norm in {100 * b['acc_norm_picks_shortest']:.0f}%; the gold option is the "
             f"shortest in {100 * b['gold_is_shortest']:.0f}%, the longest in {100 * b['gold_is_longest']:.0f}% "
             f"({b['gold_chars']:g} characters against {b['other_chars']:g}); acc picks by letter "
             f"{_letters(b.get('acc_picks_by_position'))}, acc_norm {_letters(b.get('acc_norm_picks_by_position'))}, "
             f"gold {_letters(b.get('gold_by_position'))}"
             for task, by_role in board.get("mcq_length_bias", {}).items() for role, b in by_role.items()]
    return BoardView(models=models, baseline=base, rows=rows, judge=text, judge_plumbing=plumbing, notes=notes,
                     judge_stage=judge.get("stage", ""), selection=(board.get("selection") or {}).get("line", ""),
                     guard_failed=bool((board.get("selection") or {}).get("guard_failed")),
                     ci=board.get("ci", 0.95), not_in_recipe=board.get("not_in_recipe", []))


def read_board(stage_dir: Path | str) -> BoardView | None:
    path = Path(stage_dir) / "scoreboard.json"
    return board_view(read_json(path)) if path.is_file() else None


def find_board(run_dir: Path | str) -> Path | None:
    """The first ``*/scoreboard.json`` under a run dir (the scoreboard stage's output), or None."""
    found = sorted(Path(run_dir).glob("*/scoreboard.json"))
    return found[0].parent if found else None


def drawable(text: Any) -> str:
    """``text`` without the symbols system fonts often lack (emoji, dingbats, private use): datatrove's block
    names start with one (``"🌍 Language ID"``), which a page shows as a missing-glyph box."""
    s = "".join(ch for ch in str(text) if unicodedata.category(ch) not in ("So", "Co", "Cs", "Cn")
                and ch not in "\ufe0f\u200d")
    return s.strip(" -")

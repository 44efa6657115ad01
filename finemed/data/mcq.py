"""Multiple-choice (MMLU-de / MedQA-de style) items: loaders and the rows lm-eval scores.

Shared by the ``eval.mcq`` stage and finemed's lm-eval MCQ tasks; lm-eval does the scoring. Files become items:
- GerMedBench ``med_qa.jsonl`` (``question``, ``options`` {A..E}, ``correct_answer``);
- a user JSON/JSONL in MedQA layout (``question``, ``options`` as a dict or list, ``answer_idx`` | ``answer`` |
  ``correct_answer`` as a letter, an index or the option text);
- a user CSV in MMLU layout: with a header (``question``/``Question``, ``A``..``E``, ``answer``/``Answer``) or
  headerless like the original MMLU files (question, A, B, C, D, answer letter).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel

from finemed.core.config import FinemedError
from finemed.data.loaders import load_germedbench
from finemed.data.registry import require_file

LETTERS = "ABCDEFGH"


class McqItem(BaseModel):
    id: str
    question: str
    options: dict[str, str]  # letter -> text, in letter order
    answer: str  # the correct letter


def _resolve_answer(raw, options: dict[str, str], where: str) -> str:
    s = str(raw).strip()
    if s.upper() in options:
        return s.upper()
    if s.isdigit() and 0 <= int(s) < len(options):
        return list(options)[int(s)]
    for letter, text in options.items():
        if s and s == text.strip():
            return letter
    raise FinemedError(f"{where}: answer {s!r} is neither an option letter ({', '.join(options)}), "
                       f"an index nor an option text")


def _item(row: dict, idx: int, where: str) -> McqItem:
    q = row.get("question", row.get("Question"))
    opts = row.get("options")
    if opts is None:
        opts = {k: row[k] for k in LETTERS if row.get(k) not in (None, "")}
    if isinstance(opts, list):
        opts = {LETTERS[i]: str(t) for i, t in enumerate(opts)}
    if not q or not isinstance(opts, dict) or len(opts) < 2:
        raise FinemedError(f"{where}: needs a question and at least two options (options dict/list or A..E columns)")
    opts = {str(k).upper(): str(v) for k, v in sorted(opts.items())}
    raw = next((row[k] for k in ("answer_idx", "correct_answer", "answer", "Answer", "label") if k in row), None)
    if raw is None:
        raise FinemedError(f"{where}: no answer field (answer_idx, correct_answer, answer or Answer)")
    return McqItem(id=str(row.get("id", idx)), question=str(q), options=opts, answer=_resolve_answer(raw, opts, where))


def load_germedbench_mcq(root: Path | str | None = None) -> list[McqItem]:

    return [_item(r, i, f"germedbench med_qa row {i + 1}") for i, r in enumerate(load_germedbench("med_qa", root))]


def load_mcq_file(path: Path | str) -> list[McqItem]:
    """Items from a user CSV (MMLU layout) or JSON/JSONL (MedQA layout). See the module docstring."""
    path = require_file(path, "MCQ file (CSV in MMLU layout or JSON/JSONL in MedQA layout)")
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            raise FinemedError(f"{path}: empty CSV; expected question, A, B, C, D, answer columns")
        head = [h.strip() for h in rows[0]]
        if any(h.lower() == "question" for h in head):
            dicts = [dict(zip([h if h not in ("Question",) else "question" for h in head], r)) for r in rows[1:]]
        else:
            dicts = [{"question": r[0], **{LETTERS[i]: t for i, t in enumerate(r[1:-1])}, "answer": r[-1]}
                     for r in rows]
        return [_item(d, i, f"{path}:{i + 2}") for i, d in enumerate(dicts)]
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
            rows = data if isinstance(data, list) else data.get("data", data.get("questions"))
    except json.JSONDecodeError as err:
        raise FinemedError(f"{path}: invalid JSON ({err.msg}); use a JSON list or JSONL with one question "
                           f"per line") from None
    if not isinstance(rows, list):
        raise FinemedError(f"{path}: expected a list of questions (or {{'data': [...]}})")
    return [_item(r, i, f"{path} item {i + 1}") for i, r in enumerate(rows)]


def mcq_prompt(item: McqItem) -> str:
    opts = "\n".join(f"{k}. {v}" for k, v in item.options.items())
    return f"Frage: {item.question}\n{opts}\nAntwort:"


def mcq_rows(items: list[McqItem]) -> list[dict]:
    """Rows for the lm-eval task: the prompt, the option texts as choices and the gold index."""
    return [{"id": it.id, "prompt": mcq_prompt(it), "choices": list(it.options.values()),
             "label": list(it.options).index(it.answer)} for it in items]

"""Answer sets and prompt sets: the JSONL rows that generate/pairwise/failures exchange.

An answer row is ``{model, prompt_id, prompt, answer, [reference], [scores], [finish_reason]}``. Besides a
user JSONL, three bundled sets load by name:
- ``builtin:germedbench_patient_text``: 13 real models' lay explanations of 50 findings reports, with the
  benchmark's LLM-judge scores (``scores.overall`` …) and the gold explanation as reference;
- ``builtin:germedbench_med_qa``: the same 13 models' MCQ answers (letter + reasoning);
- ``builtin:germediq``: 18 LLMs' (and 39 humans') answers to 116 German anamnesis questions, 5 per question.
Prompt sets (for ``eval generate``) are the same names with ``prompts:`` semantics via :func:`load_prompts`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from finemed.core.artifacts import atomic_write_text
from finemed.core.config import FinemedError
from finemed.data.loaders import load_germedbench, load_germedbench_results, load_germediq, read_jsonl
from finemed.data.registry import require_file

BUILTINS = ("germedbench_patient_text", "germedbench_med_qa", "germediq")
PATIENT_TEXT_INSTRUCTION = ("Erkläre den folgenden medizinischen Befund einem Patienten in einfacher, "
                            "verständlicher Sprache.\n\n")


class AnswerRow(BaseModel):
    model: str
    prompt_id: str
    prompt: str = ""
    answer: str
    reference: str | None = None
    scores: dict[str, float] = {}
    finish_reason: str | None = None


class PromptRow(BaseModel):
    prompt_id: str
    prompt: str
    reference: str | None = None


def _builtin_list() -> str:
    return ", ".join("builtin:" + b for b in BUILTINS)


def _medqa_prompt(row: dict) -> str:
    opts = "\n".join(f"{k}) {v}" for k, v in row["options"].items())
    return (f"{row['question']}\n\n{opts}\n\n"
            "Antworte mit dem Buchstaben der richtigen Antwort und einer kurzen Begründung.")


def _germedbench_answers(task: str) -> list[AnswerRow]:

    cases = {c["id"]: c for c in load_germedbench(task)}
    out = []
    for model, res in load_germedbench_results(task).items():
        for p in res["predictions"]:
            case = cases.get(p["case_id"], {})
            if task == "patient_text":
                prompt = PATIENT_TEXT_INSTRUCTION + case.get("text", "")
                answer, ref = p.get("explanation") or p.get("raw") or "", case.get("gold_explanation")
            else:
                prompt = _medqa_prompt(case) if case else ""
                answer = f"{p.get('answer', '')}: {p.get('reasoning', '')}".strip(": ")
                ref = case.get("correct_answer")
            scores = {k: float(v) for k, v in (p.get("judge_scores") or {}).items() if isinstance(v, (int, float))}
            if task == "med_qa" and case:
                scores["correct"] = float(p.get("answer") == case.get("correct_answer"))
            out.append(AnswerRow(model=model, prompt_id=p["case_id"], prompt=prompt, answer=answer, reference=ref,
                                 scores=scores))
    return out


def _germediq_answers() -> list[AnswerRow]:

    seen: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for r in load_germediq("llm"):
        k = seen[(r["model"], r["id"])]
        seen[(r["model"], r["id"])] += 1
        out.append(AnswerRow(model=r["model"], prompt_id=f"{r['id']}-{k}", prompt=r["question"],
                             answer=r["response"] or ""))
    return out


def load_answers(spec: str | Path) -> list[AnswerRow]:
    """Rows from ``builtin:NAME`` or a JSONL file; duplicate (model, prompt_id) rows are an error."""
    spec = str(spec)
    if spec.startswith("builtin:"):
        name = spec[len("builtin:"):]
        if name not in BUILTINS:
            raise FinemedError(f"answers {spec!r}: unknown builtin; use one of {_builtin_list()}")
        rows = _germediq_answers() if name == "germediq" else _germedbench_answers(name.split("_", 1)[1])
    else:
        path = require_file(spec, "answers JSONL")
        rows = []
        for i, d in enumerate(read_jsonl(path), 1):
            missing = [k for k in ("model", "prompt_id", "answer") if k not in d]
            if missing:
                raise FinemedError(f"{path}:{i}: missing field(s) {', '.join(missing)} (found: "
                                   f"{', '.join(d) or 'none'}); rows need model, prompt_id, answer")
            d = {**d, "prompt_id": str(d["prompt_id"]), "answer": "" if d["answer"] is None else str(d["answer"])}
            rows.append(AnswerRow.model_validate({k: v for k, v in d.items() if k in AnswerRow.model_fields}))
    keys = set()
    for r in rows:
        if (r.model, r.prompt_id) in keys:
            raise FinemedError(f"answers {spec}: model {r.model!r} answers prompt {r.prompt_id!r} twice; "
                               f"keep one row per pair")
        keys.add((r.model, r.prompt_id))
    return rows


def load_prompts(spec: str | Path, limit: int | None = None) -> list[PromptRow]:
    """Prompt sets for generation: the builtins above (questions only, no answers) or a JSONL with
    ``prompt`` and optional ``prompt_id``/``id`` and ``reference``."""
    spec = str(spec)
    out: list[PromptRow] = []
    if spec.startswith("builtin:"):
        name = spec[len("builtin:"):]

        if name == "germedbench_patient_text":
            out = [PromptRow(prompt_id=c["id"], prompt=PATIENT_TEXT_INSTRUCTION + c["text"],
                             reference=c.get("gold_explanation")) for c in load_germedbench("patient_text")]
        elif name == "germedbench_med_qa":
            out = [PromptRow(prompt_id=c["id"], prompt=_medqa_prompt(c), reference=c["correct_answer"])
                   for c in load_germedbench("med_qa")]
        elif name == "germediq":
            qs: dict[str, str] = {}
            for r in load_germediq("human"):
                qs.setdefault(r["id"], r["question"])
            out = [PromptRow(prompt_id=k, prompt=v) for k, v in qs.items()]
        else:
            raise FinemedError(f"prompts {spec!r}: unknown builtin; use one of {_builtin_list()}")
    else:
        path = require_file(spec, "prompts JSONL")
        for i, d in enumerate(read_jsonl(path), 1):
            if "prompt" not in d:
                raise FinemedError(f"{path}:{i}: no 'prompt' field (found: {', '.join(d) or 'none'}); "
                                   f"every row needs one")
            out.append(PromptRow(prompt_id=str(d.get("prompt_id", d.get("id", i))), prompt=str(d["prompt"]),
                                 reference=d.get("reference")))
    return out[:limit] if limit else out


def write_answers(path: Path, rows: list[AnswerRow | dict[str, Any]]) -> Path:

    lines = [json.dumps(r.model_dump(exclude_none=True) if isinstance(r, BaseModel) else r, ensure_ascii=False)
             for r in rows]
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))

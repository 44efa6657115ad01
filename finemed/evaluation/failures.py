"""Failure modes of (merged) models: language mixing and verbosity, per answer and per model (``eval.failures``).

Per answer: sentences in any script and their language (:mod:`finemed.evaluation.langmix`: sentences under
``min_words`` words are too short to call and count neither way), the off-language sentence share, the
off-language character share (off-language sentences, plus letters in a foreign script and lingua's
foreign-language segments of ``mixed_min_words``+ words inside on-language sentences), script mixing, word
count and its ratio to the reference length (the row's ``reference`` or the median human answer to the same
prompt), truncation (``finish_reason == "length"``), word-trigram repetition, empty answers and refusals.
Per model: means over answers (the sentence share over answers with at least one called sentence).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from finemed.core.artifacts import atomic_write_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger, progress
from finemed.core.plan_estimates import cpu, earlier, readable_now
from finemed.core.stages import StageResult, planner, stage
from finemed.evaluation.answers import AnswerRow, load_answers
from finemed.evaluation.langmix import (
    TARGET_SCRIPT,
    call_sentence,
    foreign_segment_chars,
    known_language,
    split_sentences,
)
from finemed.evaluation.langmix import script_of as script_of

log = get_logger(__name__)
_WORD = re.compile(r"\w+", re.UNICODE)
REFUSAL = re.compile(
    r"(ich kann (dazu |diese frage )?(keine|nicht)|als (ki|künstliche intelligenz|sprachmodell)|"
    r"ich bin (eine?|nur eine?) (ki|computerprogramm|sprachmodell|software)|"
    r"i am (an ai|a language model|a software program|an artificial)|"
    r"as an ai|i (cannot|can't|can not) (answer|provide|help)|i don't have a (body|biological))", re.IGNORECASE)
PROGRESS_FROM = 200  # answers; fewer finish before a bar would help


def repetition_rate(words: list[str], n: int = 3) -> float:
    """1 - distinct n-grams / n-grams (0 = no repeated trigram)."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def analyse_answer(text: str, lang: str, *, ref_words: float | None = None, finish_reason: str | None = None,
                   min_words: int = 3, mixed_min_words: int = 12) -> dict[str, Any]:
    """Per-answer failure metrics (see the module docstring)."""
    words = [w.lower() for w in _WORD.findall(text)]
    calls = [call_sentence(s, lang, min_words=min_words) for s in split_sentences(text, lang)]
    called = [c for c in calls if c.off is not None]
    off_chars = 0
    for c in calls:
        if c.off:
            off_chars += len(c.text)
        elif c.off is False:
            off_chars += foreign_segment_chars(c.text, lang, min_words=min_words, mixed_min_words=mixed_min_words)
    target_script = TARGET_SCRIPT.get(lang, "latin")
    foreign = [s for s in (script_of(ch) for ch in text) if s and s != target_script]
    total_chars = max(1, sum(len(c.text) for c in calls))
    return {
        "words": len(words),
        "sentences": len(calls),
        "sentences_lid": len(called),
        "off_lang_sentences": sum(bool(c.off) for c in called),
        "off_lang_sentence_share": sum(bool(c.off) for c in called) / len(called) if called else None,
        "off_lang_char_share": min(1.0, off_chars / total_chars),
        "foreign_script_chars": len(foreign),
        "foreign_scripts": sorted(set(foreign)),
        "script_mixing": bool(foreign),
        "length_ratio": len(words) / ref_words if ref_words else None,
        "truncated": None if finish_reason is None else finish_reason == "length",
        "repetition_rate": repetition_rate(words),
        "empty": not text.strip(),
        "refusal": bool(REFUSAL.search(text)),
        "languages": sorted({c.lang for c in called if c.lang}),
        "off_languages": sorted({c.lang for c in called if c.off and c.lang}),
    }


def reference_lengths(rows: list[AnswerRow], human_model: str) -> dict[tuple[str, str], float]:
    """(model, prompt_id) → reference word count: the row's reference, else the median human answer length
    to the same prompt text."""
    human: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        if r.model == human_model:
            human[r.prompt].append(len(_WORD.findall(r.answer)))
    out = {}
    for r in rows:
        if r.reference:
            out[(r.model, r.prompt_id)] = float(len(_WORD.findall(r.reference)))
        elif human.get(r.prompt):
            out[(r.model, r.prompt_id)] = float(statistics.median(human[r.prompt]))
    return out


def _mean(xs) -> float | None:
    xs = [float(x) for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


class ModelFailures(BaseModel):
    """One model's failure rates (means over its answers)."""

    n: int
    off_lang_sentence_share: float | None
    off_lang_char_share: float | None
    answers_with_off_lang: float | None
    script_mixing_rate: float | None
    mean_words: float | None
    median_length_ratio: float | None
    truncation_rate: float | None
    repetition_rate: float | None
    empty_rate: float | None
    refusal_rate: float | None


def summarise(per_answer: list[dict[str, Any]]) -> dict[str, ModelFailures]:
    by_model: dict[str, list[dict]] = defaultdict(list)
    for a in per_answer:
        by_model[a["model"]].append(a)
    out = {}
    for m, rows in sorted(by_model.items()):
        ratios = [r["length_ratio"] for r in rows if r["length_ratio"] is not None]
        trunc = [r["truncated"] for r in rows if r["truncated"] is not None]
        out[m] = ModelFailures(
            n=len(rows),
            off_lang_sentence_share=_mean(r["off_lang_sentence_share"] for r in rows),
            off_lang_char_share=_mean(r["off_lang_char_share"] for r in rows),
            answers_with_off_lang=_mean(float(bool(r["off_lang_sentences"]) or r["off_lang_char_share"] > 0)
                                        for r in rows),
            script_mixing_rate=_mean(float(r["script_mixing"]) for r in rows),
            mean_words=_mean(r["words"] for r in rows),
            median_length_ratio=statistics.median(ratios) if ratios else None,
            truncation_rate=_mean(float(t) for t in trunc) if trunc else None,
            repetition_rate=_mean(r["repetition_rate"] for r in rows),
            empty_rate=_mean(float(r["empty"]) for r in rows),
            refusal_rate=_mean(float(r["refusal"]) for r in rows),
        )
    return out


class FailuresConfig(StageConfig):
    answers: str = Field(description="answers JSONL or builtin:germediq / builtin:germedbench_patient_text")
    lang: str = "de"
    human_model: str = "human"
    include_human: bool = True
    # answers whose ``human_model`` rows give the reference lengths (median human answer to the same prompt text),
    # e.g. builtin:germediq for our own models' answers to GerMedIQ prompts; their rows are not analysed
    references: str | None = None
    worst_k: int = 5
    min_words: int = 3
    mixed_min_words: int = 12


class FailuresResult(StageResult):
    key_metric: ClassVar[str] = "summary"
    summary: str
    n_answers: int
    models: dict[str, ModelFailures]
    failures: str  # failures.json: {model: {metric: value}}
    worst: str  # failures_worst.json: the worst answers per failure mode


@stage("eval.failures")
def run(cfg: FailuresConfig, run_dir: Path) -> FailuresResult:
    if not known_language(cfg.lang):
        raise FinemedError(f"failures lang {cfg.lang!r}: use an ISO 639-1 code that py3langid knows (de, en, fr …)")
    run_dir = Path(run_dir)
    rows = load_answers(cfg.answers)
    humans = [r for r in load_answers(cfg.references) if r.model == cfg.human_model] if cfg.references else []
    if cfg.references and not humans:
        raise FinemedError(f"failures references {cfg.references!r}: no rows of model {cfg.human_model!r}; "
                           f"set human_model to the model whose answers are the reference")
    refs = reference_lengths(rows + humans, cfg.human_model)
    todo = [r for r in rows if cfg.include_human or r.model != cfg.human_model]
    per_answer = []
    for r in progress(todo, "failure modes", enabled=len(todo) >= PROGRESS_FROM):
        a = analyse_answer(r.answer, cfg.lang, ref_words=refs.get((r.model, r.prompt_id)),
                           finish_reason=r.finish_reason, min_words=cfg.min_words,
                           mixed_min_words=cfg.mixed_min_words)
        per_answer.append({"model": r.model, "prompt_id": r.prompt_id, **a, "answer": r.answer[:400]})
    table = summarise(per_answer)
    worst = {
        "off_language": sorted(per_answer, key=lambda a: -a["off_lang_char_share"])[:cfg.worst_k],
        "script_mixing": sorted(per_answer, key=lambda a: -a["foreign_script_chars"])[:cfg.worst_k],
        "verbosity": sorted((a for a in per_answer if a["length_ratio"]),
                            key=lambda a: -a["length_ratio"])[:cfg.worst_k],
        "repetition": sorted(per_answer, key=lambda a: -a["repetition_rate"])[:cfg.worst_k],
    }
    llms = {m: v for m, v in table.items() if m != cfg.human_model} or table
    if llms:
        mix = max(llms, key=lambda m: llms[m].off_lang_sentence_share or 0)
        verb = max(llms, key=lambda m: llms[m].median_length_ratio or 0)
        ratio = llms[verb].median_length_ratio
        summary = (f"{len(table)} models; most mixing {mix} ({100 * (llms[mix].off_lang_sentence_share or 0):.1f}% "
                   "off-language sentences); " + (f"most verbose {verb} ({ratio:.1f}x reference length)"
                                                  if ratio else "no reference lengths"))
    else:
        summary = "no answers"
    failures = atomic_write_json(run_dir / "failures.json", {m: v.model_dump() for m, v in table.items()})
    worst_path = atomic_write_json(run_dir / "failures_worst.json", worst)
    atomic_write_json(run_dir / "failures_items.json",  # per answer, for paired comparisons (eval.scoreboard)
                      [{k: a[k] for k in ("model", "prompt_id", "off_lang_sentence_share", "length_ratio")}
                       for a in per_answer])
    log.info("%s", summary)
    return FailuresResult(summary=summary, n_answers=len(per_answer), models=table, failures=str(failures),
                          worst=str(worst_path))


@planner("eval.failures")
def plan(config: FailuresConfig, ctx) -> dict:
    """``finemed plan``: CPU only (language-mix and length statistics per answer); no GPU, no calls."""
    if readable_now(config.answers):
        rows = len(load_answers(config.answers))
    else:
        rows = (earlier(ctx, config.answers) or {}).get("rows", 0)
    return {"answers": rows, **cpu(rows * 0.002), "disk_gib": 0.0,
            "assumes": "~2 ms of CPU per answer (script and stop-word counts); no model, no judge"}

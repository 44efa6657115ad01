"""Failure modes of (merged) models: language mixing and verbosity, per answer and per model.

Per answer: sentence languages (py3langid, offline; sentences under ``min_words`` words are too short to call),
off-language sentence and character shares (characters also from lingua's mixed-language segmentation inside
long sentences), script mixing (letters outside the target's script, e.g. CJK or Cyrillic in German), word count
and its ratio to the reference length (the row's ``reference`` or the median human answer to the same prompt),
truncation (``finish_reason == "length"``), word-trigram repetition, empty answers and refusals.
Hand-written aggregation; the language ID itself is py3langid and lingua.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field

from finemed.artifacts import atomic_write_json
from finemed.config import FinemedError, StageConfig
from finemed.evaluation.answers import AnswerRow

LID_LANGS = ["de", "en", "fr", "es", "it", "nl", "pt", "pl", "da", "sv", "ru", "zh", "ja", "ar", "tr", "cs"]
LATIN_LANGS = {"de", "en", "fr", "es", "it", "nl", "pt", "pl", "da", "sv", "tr", "cs"}
_SENT = re.compile(r"(?<=[.!?…。！？])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
REFUSAL = re.compile(
    r"(ich kann (dazu |diese frage )?(keine|nicht)|als (ki|künstliche intelligenz|sprachmodell)|ich bin (eine?|nur eine?) "
    r"(ki|computerprogramm|sprachmodell|software)|i am (an ai|a language model|a software program|an artificial)|"
    r"as an ai|i (cannot|can't|can not) (answer|provide|help)|i don't have a (body|biological))", re.IGNORECASE)


@lru_cache(maxsize=1)
def _langid():
    from py3langid.langid import _load_identifier

    return _load_identifier(norm_probs=True, langs=LID_LANGS)


@lru_cache(maxsize=4)
def _lingua(target: str):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, c.upper()) for c in ("de", "en", "fr", "es", "it", "nl", "ru", "zh") if c != target]
    codes.append(getattr(IsoCode639_1, target.upper()))
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def script_of(ch: str) -> str | None:
    """Coarse script of a letter: latin, cjk, cyrillic, greek, arabic, hangul, other; None for non-letters."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    for key, script in (("LATIN", "latin"), ("CJK", "cjk"), ("HIRAGANA", "cjk"), ("KATAKANA", "cjk"),
                        ("CYRILLIC", "cyrillic"), ("GREEK", "greek"), ("ARABIC", "arabic"), ("HANGUL", "hangul")):
        if name.startswith(key):
            return script
    return "other"


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]


def repetition_rate(words: list[str], n: int = 3) -> float:
    """1 - distinct n-grams / n-grams (0 = no repeated trigram)."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def analyse_answer(text: str, lang: str, *, ref_words: float | None = None, finish_reason: str | None = None,
                   min_words: int = 4, mixed_min_words: int = 12) -> dict[str, Any]:
    """Per-answer failure metrics (see the module docstring)."""
    words = [w.lower() for w in _WORD.findall(text)]
    sents = sentences(text)
    called = off = 0
    off_chars = 0
    sent_langs = []
    for s in sents:
        n_words = len(_WORD.findall(s))
        if n_words < min_words:
            sent_langs.append(None)
            continue
        code, _ = _langid().classify(s)
        sent_langs.append(code)
        called += 1
        if code != lang:
            off += 1
            off_chars += len(s)
        elif n_words >= mixed_min_words:  # a German sentence may still carry an English clause
            for seg in _lingua(lang).detect_multiple_languages_of(s):
                if seg.language.iso_code_639_1.name.lower() != lang and seg.word_count >= min_words:
                    off_chars += seg.end_index - seg.start_index
    letters = [script_of(c) for c in text]
    letters = [s for s in letters if s]
    target_script = "latin" if lang in LATIN_LANGS else None
    foreign = [s for s in letters if target_script and s != target_script]
    total_chars = max(1, sum(len(s) for s in sents))
    return {
        "words": len(words),
        "sentences": len(sents),
        "sentences_lid": called,
        "off_lang_sentence_share": off / called if called else 0.0,
        "off_lang_char_share": min(1.0, off_chars / total_chars),
        "foreign_script_chars": len(foreign),
        "foreign_scripts": sorted(set(foreign)),
        "script_mixing": bool(foreign),
        "length_ratio": len(words) / ref_words if ref_words else None,
        "truncated": None if finish_reason is None else finish_reason == "length",
        "repetition_rate": repetition_rate(words),
        "empty": not text.strip(),
        "refusal": bool(REFUSAL.search(text)),
        "languages": sorted({c for c in sent_langs if c}),
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


def summarise(per_answer: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_model: dict[str, list[dict]] = defaultdict(list)
    for a in per_answer:
        by_model[a["model"]].append(a)
    out = {}
    for m, rows in sorted(by_model.items()):
        ratios = [r["length_ratio"] for r in rows if r["length_ratio"] is not None]
        trunc = [r["truncated"] for r in rows if r["truncated"] is not None]
        out[m] = {
            "n": len(rows),
            "off_lang_sentence_share": _mean(r["off_lang_sentence_share"] for r in rows),
            "off_lang_char_share": _mean(r["off_lang_char_share"] for r in rows),
            "answers_with_off_lang": _mean(float(r["off_lang_sentence_share"] > 0 or r["off_lang_char_share"] > 0) for r in rows),
            "script_mixing_rate": _mean(float(r["script_mixing"]) for r in rows),
            "mean_words": _mean(r["words"] for r in rows),
            "median_length_ratio": statistics.median(ratios) if ratios else None,
            "truncation_rate": _mean(float(t) for t in trunc) if trunc else None,
            "repetition_rate": _mean(r["repetition_rate"] for r in rows),
            "empty_rate": _mean(float(r["empty"]) for r in rows),
            "refusal_rate": _mean(float(r["refusal"]) for r in rows),
        }
    return out


class FailuresConfig(StageConfig):
    answers: str = Field(description="answers JSONL or builtin:germediq / builtin:germedbench_patient_text")
    lang: str = "de"
    human_model: str = "human"
    include_human: bool = True
    worst_k: int = 5
    min_words: int = 4


def run(config: FailuresConfig, run_dir: Path) -> dict[str, Any]:
    from finemed.evaluation.answers import load_answers

    if config.lang not in LID_LANGS:
        raise FinemedError(f"failures lang {config.lang!r}: use one of {', '.join(LID_LANGS)}")
    run_dir = Path(run_dir)
    rows = load_answers(config.answers)
    refs = reference_lengths(rows, config.human_model)
    per_answer = []
    for r in rows:
        if r.model == config.human_model and not config.include_human:
            continue
        a = analyse_answer(r.answer, config.lang, ref_words=refs.get((r.model, r.prompt_id)),
                           finish_reason=r.finish_reason, min_words=config.min_words)
        per_answer.append({"model": r.model, "prompt_id": r.prompt_id, **a, "answer": r.answer[:400]})
    table = summarise(per_answer)
    worst = {
        "off_language": sorted(per_answer, key=lambda a: -a["off_lang_char_share"])[:config.worst_k],
        "script_mixing": sorted(per_answer, key=lambda a: -a["foreign_script_chars"])[:config.worst_k],
        "verbosity": sorted((a for a in per_answer if a["length_ratio"]), key=lambda a: -a["length_ratio"])[:config.worst_k],
        "repetition": sorted(per_answer, key=lambda a: -a["repetition_rate"])[:config.worst_k],
    }
    llms = {m: v for m, v in table.items() if m != config.human_model} or table
    mix = max(llms, key=lambda m: llms[m]["off_lang_char_share"] or 0)
    verb = max(llms, key=lambda m: llms[m]["median_length_ratio"] or 0)
    summary = (f"{len(table)} models; most mixing {mix} ({100 * (llms[mix]['off_lang_char_share'] or 0):.1f}% off-language chars); "
               f"most verbose {verb} ({llms[verb]['median_length_ratio'] or float('nan'):.1f}x reference length)")
    atomic_write_json(run_dir / "failures.json", table)
    atomic_write_json(run_dir / "failures_worst.json", worst)
    result = {"summary": summary, "models": table, "n_answers": len(per_answer)}
    atomic_write_json(run_dir / "metrics.json", result)
    return result

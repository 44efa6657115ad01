"""A 50-instruction German/English instruction-following probe with programmatic checks.

CPT on raw domain text erodes a chat model's instruction following; the SLERP merge is meant to bring it
back. This probe measures that cheaply: 25 tasks, each asked in German and in English, answered greedily
through the model's chat template, and scored by checks that need no judge model:

- ``lang``: the answer is in the language asked in (py3langid, restricted to de/en);
- ``max_words:N``, ``sentences:N``, ``one_word``, ``number:V``, ``upper:W``: length and exactness limits;
- ``bullets:N`` (N list items, bulleted or numbered), ``numbered:N``, ``comma_list:N``, ``json:k1,k2``,
  ``yes_no``, ``ends_q``: the format asked for;
- ``eos``: generation stopped (EOS or a stop string) before ``max_new_tokens``.

An instruction passes when all its checks pass; the score is the pass rate. IFEval (lm-eval) has the same
idea but English-only instructions and no EOS check, hence this small bilingual set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from finemed.config import FinemedError
from finemed.engine import VLLMSettings, choose_engine, release
from finemed.llm import LLMClient
from finemed.models.generate import generate
from finemed.plan_estimates import decode_steps, inference
from finemed.runtime import Runtime


@dataclass(frozen=True)
class Instruction:
    id: str
    lang: str
    prompt: str
    checks: tuple[str, ...]


# (task id, German prompt, English prompt, checks); "lang" and "eos" are added where they apply.
_TASKS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("flu_bullets", "Nenne drei Symptome einer Grippe als Stichpunktliste mit genau drei Punkten.",
     "List three symptoms of the flu as a bullet list with exactly three items.", ("bullets:3",)),
    ("hypertension_30w", "Erkläre in höchstens 30 Wörtern, was Bluthochdruck ist.",
     "Explain in at most 30 words what high blood pressure is.", ("lang", "max_words:30")),
    ("water_yes_no", "Antworte nur mit Ja oder Nein: Ist Wasser bei Raumtemperatur flüssig?",
     "Answer only with Yes or No: Is water liquid at room temperature?", ("yes_no", "max_words:2")),
    ("capital_word", "Was ist die Hauptstadt von Deutschland? Antworte mit einem einzigen Wort.",
     "What is the capital of Germany? Answer with a single word.", ("one_word",)),
    ("person_json", 'Gib ein JSON-Objekt mit den Schlüsseln "name" und "alter" für eine erfundene Person zurück. '
     "Nur JSON, kein weiterer Text.",
     'Return a JSON object with the keys "name" and "age" for a made-up person. Only JSON, no other text.',
     ("json",)),
    ("weather_sentence", "Schreibe einen Satz über das Wetter.", "Write one sentence about the weather.",
     ("lang", "sentences:1", "max_words:25")),
    ("fruit_numbered", "Nenne vier Obstsorten als nummerierte Liste.", "Name four fruits as a numbered list.",
     ("numbered:4",)),
    ("sum_number", "Was ist 7 plus 5? Antworte nur mit der Zahl.", "What is 7 plus 5? Answer only with the number.",
     ("number:12",)),
    ("greeting_20w", "Schreibe eine kurze Begrüßung für eine E-Mail an eine Ärztin, höchstens 20 Wörter.",
     "Write a short greeting for an email to a doctor, at most 20 words.", ("lang", "max_words:20")),
    ("exercise_bullets", "Nenne zwei Vorteile von Bewegung als Stichpunkte.",
     "Give two benefits of exercise as bullet points.", ("bullets:2",)),
    ("stethoscope_sentence", "Beschreibe in genau einem Satz, was ein Stethoskop ist.",
     "Describe in exactly one sentence what a stethoscope is.", ("lang", "sentences:1")),
    ("sun_yes_no", "Antworte nur mit Ja oder Nein: Ist die Sonne ein Stern?",
     "Answer only with Yes or No: Is the sun a star?", ("yes_no", "max_words:2")),
    ("upper_word", "Schreibe das Wort 'Gesundheit' in Großbuchstaben und sonst nichts.",
     "Write the word 'health' in capital letters and nothing else.", ("upper",)),
    ("sleep_numbered", "Gib drei Tipps für besseren Schlaf als nummerierte Liste.",
     "Give three tips for better sleep as a numbered list.", ("numbered:3",)),
    ("opposite_word", "Was ist das Gegenteil von 'heiß'? Antworte mit einem Wort.",
     "What is the opposite of 'hot'? Answer with one word.", ("one_word",)),
    ("handwash_40w", "Erkläre in höchstens 40 Wörtern, warum man sich die Hände waschen sollte.",
     "Explain in at most 40 words why you should wash your hands.", ("lang", "max_words:40")),
    ("diagnosis_json", 'Gib ein JSON-Objekt mit dem Schlüssel "diagnose" und einem Beispielwert zurück. Nur JSON.',
     'Return a JSON object with the key "diagnosis" and an example value. Only JSON.', ("json",)),
    ("body_commas", "Nenne fünf Körperteile, durch Kommas getrennt, in einer einzigen Zeile.",
     "Name five body parts, separated by commas, on a single line.", ("comma_list:5",)),
    ("coffee_two", "Schreibe zwei kurze Sätze über Kaffee.", "Write two short sentences about coffee.",
     ("lang", "sentences:2", "max_words:40")),
    ("week_number", "Wie viele Tage hat eine Woche? Antworte nur mit der Zahl.",
     "How many days does a week have? Answer only with the number.", ("number:7",)),
    ("doctor_question", "Formuliere eine Frage, die ein Arzt einem Patienten stellen könnte. Nur die Frage.",
     "Write one question a doctor might ask a patient. Only the question.", ("lang", "ends_q", "max_words:25")),
    ("diabetes_title", "Schreibe einen Titel mit höchstens 6 Wörtern für einen Artikel über Diabetes.",
     "Write a title of at most 6 words for an article about diabetes.", ("max_words:6",)),
    ("colour_bullets", "Nenne drei Farben als Stichpunktliste.", "List three colours as a bullet list.",
     ("bullets:3",)),
    ("fever_summary", "Fasse in einem Satz zusammen: Der Patient hat seit drei Tagen Fieber und Husten und schläft "
     "schlecht.", "Summarise in one sentence: The patient has had a fever and a cough for three days and sleeps "
     "badly.", ("lang", "sentences:1")),
    ("advice_30w", "Gib in höchstens 30 Wörtern einen Rat, wie man sich vor einer Erkältung schützt.",
     "In at most 30 words, give one piece of advice on how to avoid catching a cold.", ("lang", "max_words:30")),
]
_JSON_KEYS = {"person_json": {"de": ("name", "alter"), "en": ("name", "age")},
              "diagnosis_json": {"de": ("diagnose",), "en": ("diagnosis",)}}
_UPPER = {"de": "GESUNDHEIT", "en": "HEALTH"}


def instructions() -> list[Instruction]:
    """The 50 probe instructions (25 tasks × de/en), each with its checks and ``eos``."""
    out = []
    for task, de, en, checks in _TASKS:
        for lang, prompt in (("de", de), ("en", en)):
            cs = list(checks)
            if "json" in cs:
                cs[cs.index("json")] = "json:" + ",".join(_JSON_KEYS[task][lang])
            if "upper" in cs:
                cs[cs.index("upper")] = "upper:" + _UPPER[lang]
            if "yes_no" in cs:
                cs[cs.index("yes_no")] = "yes_no:" + lang
            out.append(Instruction(f"{task}.{lang}", lang, prompt, tuple(cs) + ("eos",)))
    return out


# ------------------------------------------------------------------------------------------------ checks
@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(["de", "en"])
    return ident


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’-]+", text)


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.strip().splitlines() if ln.strip()]


def _strip_fence(text: str) -> str:
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return (m.group(1) if m else text).strip()


def check(name: str, answer: str, stopped: bool, lang: str) -> bool:
    """Apply one named check to an answer."""
    kind, _, arg = name.partition(":")
    text = answer.strip()
    bare = re.sub(r"^[\s\"'“„*_`]+|[\s\"'”“.!*_`]+$", "", text)
    if kind == "eos":
        return stopped
    if kind == "lang":
        return bool(_words(text)) and _identifier().classify(text)[0] == lang
    if kind == "max_words":
        return 0 < len(_words(text)) <= int(arg)
    if kind == "sentences":
        parts = [p for p in re.split(r"(?<=[.!?])\s+", text) if _words(p)]
        return len(parts) == int(arg) and "\n" not in text
    if kind == "one_word":
        return len(_words(bare)) == 1
    if kind == "number":
        return bare == arg
    if kind == "upper":
        return bare == arg
    if kind == "yes_no":
        first = (_words(text) or [""])[0].lower()
        return first in ({"ja", "nein"} if arg == "de" else {"yes", "no"})
    if kind == "bullets":  # a list of exactly N items; bullets or numbers both count as list items
        return sum(bool(re.match(r"^([-*•]|\d+[.)])\s+\S", ln)) for ln in _lines(text)) == int(arg)
    if kind == "numbered":
        return sum(bool(re.match(r"^\d+[.)]\s+\S", ln)) for ln in _lines(text)) == int(arg)
    if kind == "comma_list":
        lines = _lines(text)
        items = [i for i in bare.split(",") if i.strip()]
        return len(lines) == 1 and len(items) == int(arg)
    if kind == "json":
        try:
            obj = json.loads(_strip_fence(text))
        except json.JSONDecodeError:
            return False
        return isinstance(obj, dict) and all(k in obj for k in arg.split(","))
    if kind == "ends_q":
        return text.endswith("?")
    raise ValueError(f"unknown probe check {name!r}")


# -------------------------------------------------------------------------------------------------- run
class ProbeItem(BaseModel):
    id: str
    answer: str
    stopped: bool
    checks: dict[str, bool]
    passed: bool


class ProbeResult(BaseModel):
    pass_rate: float
    by_lang: dict[str, float]
    by_check: dict[str, float]
    items: list[ProbeItem]
    engine: str = "hf"  # what answered: hf | vllm


def score(items: list[Instruction], answers: list[tuple[str, bool]]) -> ProbeResult:
    """Apply every instruction's checks to its answer; aggregate pass rates overall, by language, by check."""
    scored = []
    for ins, (text, stopped) in zip(items, answers):
        res = {c: check(c, text, stopped, ins.lang) for c in ins.checks}
        scored.append(ProbeItem(id=ins.id, answer=text, stopped=stopped, checks=res, passed=all(res.values())))
    by_lang = {lang: _rate([s.passed for s, i in zip(scored, items) if i.lang == lang]) for lang in ("de", "en")}
    kinds: dict[str, list[bool]] = {}
    for s in scored:
        for c, ok in s.checks.items():
            kinds.setdefault(c.split(":")[0], []).append(ok)
    return ProbeResult(pass_rate=_rate([s.passed for s in scored]), by_lang=by_lang,
                       by_check={k: _rate(v) for k, v in sorted(kinds.items())}, items=scored)


def _rate(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def run_probe(model, tok, *, max_new_tokens: int = 64, batch_size: int = 16, limit: int | None = None,
              runtime: Runtime | None = None) -> ProbeResult:
    """Answer the probe greedily through the chat template (:func:`finemed.models.generate.generate`), score it."""
    items = instructions()[:limit] if limit else instructions()
    gens = generate(model, tok, [i.prompt for i in items], max_new_tokens=max_new_tokens, batch_size=batch_size,
                    runtime=runtime, progress="instruction probe")
    return score(items, [(g.text, g.finish_reason == "stop") for g in gens])


def run_probe_served(model_dir, *, engine: str = "auto", vllm: VLLMSettings | None = None, max_new_tokens: int = 64,
                     limit: int | None = None, concurrency: int = 16, keep_server: bool = True) -> ProbeResult | None:
    """The probe on a managed vLLM server for ``model_dir`` (same greedy chat-template answers; ``stopped`` is the
    server's ``finish_reason == "stop"``), or None where :func:`finemed.engine.choose_engine` says hf. A failed
    reply fails the probe in one line. ``keep_server=False`` stops the server after (each sweep point is a new
    model: its server would only hold memory)."""
    if choose_engine(engine, "merge probe") != "vllm":
        return None
    items = instructions()[:limit] if limit else instructions()
    client = LLMClient(f"local:{model_dir}", engine="vllm", vllm=vllm, max_tokens=max_new_tokens,
                       concurrency=concurrency)
    try:
        replies = client.chat([[{"role": "user", "content": i.prompt}] for i in items], cache_tag="probe")
    finally:
        client.close()
        if not keep_server and client.server is not None:
            release(client.server)
    bad = [r.error for r in replies if r.text is None]
    if bad:
        raise FinemedError(f"merge probe on vLLM ({model_dir}): {len(bad)} of {len(items)} replies failed: {bad[0]}")
    res = score(items, [(r.text or "", r.finish_reason == "stop") for r in replies])
    res.engine = "vllm"
    return res


def probe_cost(models: list[str], ctx, *, limit: int | None, max_new_tokens: int, batch_size: int) -> dict[str, Any]:
    """The instruction probe (:mod:`finemed.merging.probe`, greedy through the chat template) of each model."""
    items = len(instructions()[:limit] if limit else instructions())
    costs = [inference(m, ctx, tokens=items * (60 + max_new_tokens),
                       decode_steps=decode_steps(items, batch_size, max_new_tokens)) for m in models]
    return {"probed_models": len(models), "probe_prompts": items,
            "gpu_hours": round(sum(c.get("gpu_hours", 0.0) for c in costs), 6),
            "memory_gib_per_process": max((c.get("memory_gib_per_process", 0.0) for c in costs), default=0.0),
            "disk_gib": 0.0,
            "assumes": "probe prompts ~60 tokens, answers run to max_new_tokens, batched; the rest reads earlier "
                       "stages' outputs (seconds of CPU)"}

"""A 128-instruction German/English instruction-following probe with programmatic checks, split dev/test.

CPT on raw domain text erodes a chat model's instruction following; the SLERP merge is meant to bring it
back. This probe measures that cheaply: 64 tasks (:mod:`finemed.merging.probe_items`), each asked in German and
in English, answered greedily through the model's chat template, and scored by checks that need no judge model:

- ``lang``: the answer is in the language asked in (py3langid, restricted to de/en);
- ``max_words:N``, ``sentences:N``, ``one_word``, ``number:V``, ``upper:W``: length and exactness limits;
- ``bullets:N`` (N list items, bulleted or numbered), ``numbered:N``, ``comma_list:N``, ``json:k1,k2``,
  ``yes_no``, ``ends_q``: the format asked for;
- ``eos``: generation stopped (EOS or a stop string) before ``max_new_tokens``.

An instruction passes when all its checks pass; the score is the pass rate. IFEval (lm-eval) has the same
idea but English-only instructions and no EOS check, hence this small bilingual set.

Each item carries its half of the fixed dev/test split (:data:`finemed.merging.probe_items.SPLIT_RULE`), and a
result keeps the halves apart (``splits``: ``dev`` and ``test``, each with its pass rate): selections read dev,
verdicts and scoreboards read test. The top-level ``pass_rate`` is over every item scored.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from finemed.core.config import FinemedError
from finemed.core.engine import VLLMSettings, choose_engine, release
from finemed.core.llm import LLMClient
from finemed.core.plan_estimates import decode_steps, inference
from finemed.core.runtime import Runtime
from finemed.merging.probe_items import SPLIT_RULE, Instruction, Split, instructions, split_of
from finemed.models.generate import generate


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
    split: str = ""  # dev | test (probe_items.split_of)
    answer: str
    stopped: bool
    checks: dict[str, bool]
    passed: bool


class SplitScore(BaseModel):
    n: int
    pass_rate: float
    by_lang: dict[str, float]


class ProbeResult(BaseModel):
    pass_rate: float  # over every item scored (both halves); read splits["test"] for a verdict
    by_lang: dict[str, float]
    by_check: dict[str, float]
    items: list[ProbeItem]
    splits: dict[str, SplitScore] = {}  # "dev" / "test": each half on its own (a half with no item is absent)
    split_rule: str = SPLIT_RULE
    engine: str = "hf"  # what answered: hf | vllm

    def half(self, split: str) -> SplitScore | None:
        return self.splits.get(split)


def score(items: list[Instruction], answers: list[tuple[str, bool]]) -> ProbeResult:
    """Apply every instruction's checks to its answer; aggregate pass rates overall, by language, by check."""
    scored = []
    for ins, (text, stopped) in zip(items, answers):
        res = {c: check(c, text, stopped, ins.lang) for c in ins.checks}
        scored.append(ProbeItem(id=ins.id, split=split_of(ins.id), answer=text, stopped=stopped, checks=res,
                                passed=all(res.values())))
    by_lang = {lang: _rate([s.passed for s, i in zip(scored, items) if i.lang == lang]) for lang in ("de", "en")}
    kinds: dict[str, list[bool]] = {}
    for s in scored:
        for c, ok in s.checks.items():
            kinds.setdefault(c.split(":")[0], []).append(ok)
    splits = {}
    for half in ("dev", "test"):
        part = [(s, i) for s, i in zip(scored, items) if s.split == half]
        if part:
            splits[half] = SplitScore(n=len(part), pass_rate=_rate([s.passed for s, _ in part]),
                                      by_lang={lang: _rate([s.passed for s, i in part if i.lang == lang])
                                               for lang in ("de", "en")})
    return ProbeResult(pass_rate=_rate([s.passed for s in scored]), by_lang=by_lang,
                       by_check={k: _rate(v) for k, v in sorted(kinds.items())}, items=scored, splits=splits)


def _rate(flags: list[bool]) -> float:
    """The exact share (not rounded: the sweep compares rates, and 8/62 must equal 0.8 x 10/62)."""
    return sum(flags) / len(flags) if flags else 0.0


def probe_items(split: Split = "all", limit: int | None = None) -> list[Instruction]:
    """The instructions of ``split``, at most ``limit``; with ``all`` a limit is shared by the halves (the first
    ceil(N/2) dev items and the first floor(N/2) test items), so a shrunk run still scores both."""
    if not limit:
        return instructions(split)
    if split != "all":
        return instructions(split)[:limit]
    keep = {i.id for i in instructions("dev")[:(limit + 1) // 2]} | {i.id for i in instructions("test")[:limit // 2]}
    return [i for i in instructions() if i.id in keep]


def run_probe(model, tok, *, max_new_tokens: int = 64, batch_size: int = 16, limit: int | None = None,
              runtime: Runtime | None = None, split: Split = "all") -> ProbeResult:
    """Answer the probe greedily through the chat template (:func:`finemed.models.generate.generate`), score it."""
    items = probe_items(split, limit)
    gens = generate(model, tok, [i.prompt for i in items], max_new_tokens=max_new_tokens, batch_size=batch_size,
                    runtime=runtime, progress="instruction probe")
    return score(items, [(g.text, g.finish_reason == "stop") for g in gens])


def run_probe_served(model_dir, *, engine: str = "auto", vllm: VLLMSettings | None = None, max_new_tokens: int = 64,
                     limit: int | None = None, concurrency: int = 16, keep_server: bool = True,
                     split: Split = "all") -> ProbeResult | None:
    """The probe on a managed vLLM server for ``model_dir`` (same greedy chat-template answers; ``stopped`` is the
    server's ``finish_reason == "stop"``), or None where :func:`finemed.core.engine.choose_engine` says hf. A failed
    reply fails the probe in one line. ``keep_server=False`` stops the server after (each sweep point is a new
    model: its server would only hold memory)."""
    if choose_engine(engine, "merge probe") != "vllm":
        return None
    items = probe_items(split, limit)
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


def probe_cost(models: list[str], ctx, *, limit: int | None, max_new_tokens: int, batch_size: int,
               split: Split = "all") -> dict[str, Any]:
    """The instruction probe (:mod:`finemed.merging.probe`, greedy through the chat template) of each model."""
    items = len(probe_items(split, limit))
    costs = [inference(m, ctx, tokens=items * (60 + max_new_tokens),
                       decode_steps=decode_steps(items, batch_size, max_new_tokens)) for m in models]
    return {"probed_models": len(models), "probe_prompts": items,
            "gpu_hours": round(sum(c.get("gpu_hours", 0.0) for c in costs), 6),
            "memory_gib_per_process": max((c.get("memory_gib_per_process", 0.0) for c in costs), default=0.0),
            "disk_gib": 0.0,
            "assumes": "probe prompts ~60 tokens, answers run to max_new_tokens, batched; the rest reads earlier "
                       "stages' outputs (seconds of CPU)"}

"""Pairwise judging: every pair of answers to a prompt, judged in both orders, robust verdict parsing.

SPEC is an :class:`~finemed.core.llm.LLMClient` spec (``http://HOST:PORT/v1#MODEL`` or ``local:PATH``) or
``scores:FIELD`` (pointwise: the higher per-answer score wins, e.g. GerMedBench's judge ``overall``).

Rules (hand-written: no library runs Arena-Hard-style pairwise judging against an arbitrary endpoint):
- each (prompt, a, b) is judged as (A=a, B=b) and (A=b, B=a); agreeing verdicts give the outcome,
  disagreeing ones a tie (position bias cancels);
- a verdict is ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie); an unparseable or ambiguous reply is asked once more
  (the reply plus a one-line reminder), then that order is ``invalid`` and the pair's outcome is ``invalid``:
  counted, never a tie;
- an order still without a verdict is decided by probability (:mod:`finemed.core.verdicts`): the judge is asked for
  the letter only, and P(A) against P(B) of its next token decides (a ``local:`` judge; endpoints stay text-only).
  Small judges that never write a parsable verdict still answer; ``prob_verdicts`` counts these orders;
- the LLMClient's SQLite cache is keyed by (judge, messages = prompt + a + b in order, params, tag), so a rerun
  makes no calls; retries/backoff and the concurrency limit live there too.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from finemed.core.config import FinemedError
from finemed.core.engine import VLLMSettings
from finemed.core.llm import LLMClient
from finemed.core.logs import Counter
from finemed.core.verdicts import verdicts as prob_verdicts
from finemed.evaluation.answers import AnswerRow

Outcome = Literal["a", "b", "tie", "invalid"]

PROMPTS = {
    "de": {
        "system": ("Du bist ein unparteiischer Gutachter. Vergleiche zwei Antworten eines KI-Assistenten auf dieselbe "
                   "Anfrage. Bewerte Korrektheit, Hilfreichheit, Vollständigkeit und Verständlichkeit. Die Reihenfolge "
                   "und die Länge der Antworten dürfen dein Urteil nicht beeinflussen. Begründe kurz und schließe mit "
                   "genau einem Urteil: [[A]] wenn A besser ist, [[B]] wenn B besser ist, [[C]] bei Gleichstand."),
        "user": "[Anfrage]\n{prompt}\n\n[Antwort A]\n{a}\n\n[Antwort B]\n{b}\n\nDein Urteil ([[A]], [[B]] oder [[C]]):",
        "reminder": "Antworte jetzt nur mit genau einem Urteil: [[A]], [[B]] oder [[C]].",
        "letter": "Welche Antwort ist besser? Antworte nur mit dem Buchstaben A oder B.",
    },
    "en": {
        "system": ("You are an impartial judge. Compare two AI assistant answers to the same request. Judge "
                   "correctness, helpfulness, completeness and clarity. Do not let the order or the length of the "
                   "answers influence you. Explain briefly and end with exactly one verdict: [[A]] if A is better, "
                   "[[B]] if B is better, [[C]] for a tie."),
        "user": "[Request]\n{prompt}\n\n[Answer A]\n{a}\n\n[Answer B]\n{b}\n\nYour verdict ([[A]], [[B]] or [[C]]):",
        "reminder": "Reply now with exactly one verdict only: [[A]], [[B]] or [[C]].",
        "letter": "Which answer is better? Reply with the letter A or B only.",
    },
}
_BRACKET = re.compile(r"\[\[\s*(A|B|C|TIE|UNENTSCHIEDEN|GLEICHSTAND)\s*\]\]", re.IGNORECASE)
_LABELLED = re.compile(r"(?:verdict|urteil|winner|gewinner|final answer|antwort)\s*[:=]\s*\**\s*\[?\s*(A|B|C|tie)\b",
                       re.IGNORECASE)
_TIES = {"C", "TIE", "UNENTSCHIEDEN", "GLEICHSTAND"}


def parse_verdict(text: str | None) -> Literal["A", "B", "tie"] | None:
    """``[[A]]``/``[[B]]``/``[[C]]`` (also ``Verdict: A``, or a bare ``A``); None when absent or ambiguous."""
    if not text:
        return None
    found = {m.upper() for m in _BRACKET.findall(text)}
    if not found:
        found = {m.upper() for m in _LABELLED.findall(text)}
    if not found:
        bare = text.strip().strip("*.[]() \n").upper()
        found = {bare} if bare in {"A", "B"} | _TIES else set()
    found = {"tie" if f in _TIES else f for f in found}
    return found.pop() if len(found) == 1 else None  # type: ignore[return-value]


class PairJudgment(BaseModel):
    prompt_id: str
    model_a: str
    model_b: str
    verdict_ab: str | None = None  # verdict with a shown first: "A" (a wins) | "B" | "tie" | None (invalid)
    verdict_ba: str | None = None  # verdict with b shown first
    outcome: Outcome
    len_a: int = 0  # characters, as AlpacaEval measures length
    len_b: int = 0


def combine(v_ab: str | None, v_ba: str | None) -> Outcome:
    """Both orders → one outcome for a: agreeing → that, disagreeing → tie, any invalid → invalid."""
    if v_ab is None or v_ba is None:
        return "invalid"
    first = {"A": "a", "B": "b", "tie": "tie"}[v_ab]
    second = {"A": "b", "B": "a", "tie": "tie"}[v_ba]
    return first if first == second else "tie"


def make_pairs(rows: list[AnswerRow], pairs: str = "all") -> list[tuple[str, AnswerRow, AnswerRow]]:
    """(prompt_id, a, b) with a < b by model name; ``pairs`` = ``all`` or ``vs:MODEL`` (only pairs with it)."""
    by_prompt: dict[str, dict[str, AnswerRow]] = defaultdict(dict)
    for r in rows:
        by_prompt[r.prompt_id][r.model] = r
    ref = pairs[3:] if pairs.startswith("vs:") else None
    if pairs != "all" and ref is None:
        raise FinemedError(f"pairs {pairs!r}: use 'all' or 'vs:MODEL'")
    if ref is not None and ref not in {r.model for r in rows}:
        raise FinemedError(f"pairs {pairs!r}: model {ref!r} is not in the answers")
    out = []
    for pid in sorted(by_prompt):
        models = sorted(by_prompt[pid])
        for ma, mb in itertools.combinations(models, 2):
            if ref is None or ref in (ma, mb):
                out.append((pid, by_prompt[pid][ma], by_prompt[pid][mb]))
    return out


def _field(row: AnswerRow, field: str) -> float | None:
    if field in row.scores:
        return row.scores[field]
    return None


def judge_scores(triples, field: str) -> list[PairJudgment]:
    """Pointwise mode: higher ``scores[field]`` wins, equal is a tie, a missing score is invalid."""
    out = []
    for pid, a, b in triples:
        sa, sb = _field(a, field), _field(b, field)
        outcome: Outcome = "invalid" if sa is None or sb is None else ("a" if sa > sb else "b" if sb > sa else "tie")
        v = {"a": "A", "b": "B", "tie": "tie"}.get(outcome)
        out.append(PairJudgment(prompt_id=pid, model_a=a.model, model_b=b.model, verdict_ab=v,
                                verdict_ba={"A": "B", "B": "A", "tie": "tie"}.get(v or "", None), outcome=outcome,
                                len_a=len(a.answer), len_b=len(b.answer)))
    return out


def _messages(lang: str, prompt: str, first: str, second: str) -> list[dict]:
    p = PROMPTS[lang]
    return [{"role": "system", "content": p["system"]},
            {"role": "user", "content": p["user"].format(prompt=prompt, a=first, b=second)}]


def chat_with_progress(client, convs: list[list[dict]], cache_tag: str, desc: str) -> list:
    """``client.chat`` in chunks of a few concurrency rounds, advancing a progress bar per chunk."""
    step = max(1, 4 * getattr(client, "concurrency", 8))
    replies: list = []
    with Counter(desc, len(convs)) as bar:
        for start in range(0, len(convs), step):
            chunk = convs[start:start + step]
            replies.extend(client.chat(chunk, cache_tag=cache_tag))
            bar.advance(len(chunk))
    return replies


def judge_llm(triples, client, lang: str = "de") -> tuple[list[PairJudgment], dict[str, int]]:
    """LLM mode: 2 calls per pair (+1 retry per unparseable reply). Returns judgments and counters."""
    if lang not in PROMPTS:
        raise FinemedError(f"judge language {lang!r}: use one of {', '.join(PROMPTS)}")
    convs = []
    for pid, a, b in triples:
        prompt = a.prompt or b.prompt
        convs.append(_messages(lang, prompt, a.answer, b.answer))
        convs.append(_messages(lang, prompt, b.answer, a.answer))
    replies = chat_with_progress(client, convs, "pairwise-v1", "judge")
    verdicts = [parse_verdict(r.text) for r in replies]
    retry_idx = [i for i, v in enumerate(verdicts) if v is None]
    counts = {"judge_calls_failed": sum(r.text is None for r in replies), "unparseable_first": len(retry_idx)}
    if retry_idx:
        retry_convs = [convs[i] + [{"role": "assistant", "content": replies[i].text or ""},
                                   {"role": "user", "content": PROMPTS[lang]["reminder"]}] for i in retry_idx]
        for i, r in zip(retry_idx, chat_with_progress(client, retry_convs, "pairwise-v1-retry", "judge retries")):
            verdicts[i] = parse_verdict(r.text)
    still = [i for i, v in enumerate(verdicts) if v is None]
    counts["prob_verdicts"] = 0
    # a local judge (HF: next-token probabilities; vLLM: its top_logprobs); given endpoints stay text-only
    if still and (getattr(client, "kind", "") == "local" or getattr(client, "engine", "") == "vllm"):
        ask = PROMPTS[lang]["letter"]
        letter = [convs[i][:-1] + [{"role": "user", "content": f"{convs[i][-1]['content']}\n{ask}"}] for i in still]
        for i, v in zip(still, prob_verdicts(client, letter, cache_tag="pairwise-v1-letter", yes=("A",), no=("B",))):
            if v.p_yes is not None and v.mass > 0:
                verdicts[i] = "A" if v.p_yes >= 0.5 else "B"
                counts["prob_verdicts"] += 1
    counts["invalid_orders"] = sum(v is None for v in verdicts)
    out = []
    for k, (pid, a, b) in enumerate(triples):
        v_ab, v_ba = verdicts[2 * k], verdicts[2 * k + 1]
        out.append(PairJudgment(prompt_id=pid, model_a=a.model, model_b=b.model, verdict_ab=v_ab, verdict_ba=v_ba,
                                outcome=combine(v_ab, v_ba), len_a=len(a.answer), len_b=len(b.answer)))
    return out, counts


def run_pairwise(rows: list[AnswerRow], judge: str, *, lang: str = "de", pairs: str = "all",
                 cache_path: Path | None = None, concurrency: int = 8, max_tokens: int = 256,
                 timeout_s: float = 60.0, max_retries: int = 4, backoff_s: float = 0.5,
                 max_prompts: int | None = None, engine: str = "auto",
                 vllm: VLLMSettings | None = None) -> tuple[list[PairJudgment], dict]:
    """Judge all pairs; returns (judgments, info with counters and the client's call stats)."""
    if max_prompts:
        keep = sorted({r.prompt_id for r in rows})[:max_prompts]
        rows = [r for r in rows if r.prompt_id in set(keep)]
    triples = make_pairs(rows, pairs)
    if not triples:
        raise FinemedError("pairwise: no prompt has answers from two models; check the answers file")
    if judge.startswith("scores:"):
        field = judge[len("scores:"):]
        if not field:
            raise FinemedError("judge 'scores:' needs a field, e.g. scores:overall")
        return judge_scores(triples, field), {"mode": "scores", "field": field, "pairs": len(triples)}
    client = LLMClient(judge, cache_path=cache_path, concurrency=concurrency, max_tokens=max_tokens,
                       timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s, engine=engine, vllm=vllm)
    try:
        judgments, counts = judge_llm(triples, client, lang)
    finally:
        client.close()
    return judgments, {"mode": "llm", "judge": judge, "engine": client.engine, "pairs": len(triples), **counts,
                       "client": dict(client.stats)}

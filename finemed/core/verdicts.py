"""Yes/no verdicts by probability: P(yes) from the next-token distribution, not from generated text.

- local models (``local:``): the chat template is applied and ONE forward pass per batch gives the
  next-token distribution; P(yes) = mass(yes tokens) / (mass(yes tokens) + mass(no tokens)), where the
  tokens are the first tokens of the verdict words and their variants (leading space, capitalised, upper
  case); a token that starts a yes word and a no word counts for neither. ``method="probs"``.
- OpenAI-compatible endpoints: ``logprobs: true, top_logprobs: 20, max_tokens: 1``, and the same sum over
  the returned alternatives (``method="logprobs"``). An endpoint that returns no logprobs (``transformers
  serve`` ignores the field) is detected on the first doc; then every doc is asked for a short text answer
  that is parsed (``method="text"``; an unparseable answer gets no label and is counted).

Verdicts are cached in the client's SQLite cache like chat replies.
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import dataclass
from typing import Sequence

from finemed.core.llm import LLMClient
from finemed.core.logs import Counter

YES_WORDS = ("ja", "yes")
NO_WORDS = ("nein", "no")
TOP_LOGPROBS = 20
_YES = re.compile(r"^\W*(ja|yes|medizinisch|medical)\b", re.I)
_NO = re.compile(r"^\W*(nein|no|nicht medizinisch|not medical)\b", re.I)


@dataclass
class Verdict:
    p_yes: float | None  # None on the text fallback
    method: str  # "probs" | "logprobs" | "text"
    text_label: int | None = None  # the parsed answer on the text fallback
    mass: float | None = None  # probability mass the verdict tokens took (a sanity number)
    reply: str | None = None
    error: str | None = None
    cached: bool = False


def parse_verdict(text: str | None) -> int | None:
    """1 for ja/yes/medizinisch, 0 for nein/no, None otherwise."""
    if not text:
        return None
    if _NO.search(text):
        return 0
    if _YES.search(text):
        return 1
    return None


def variants(word: str) -> list[str]:
    forms = {word, word.capitalize(), word.upper()}
    return sorted(forms | {" " + f for f in forms})


def verdict_token_ids(tok, yes: Sequence[str] = YES_WORDS, no: Sequence[str] = NO_WORDS) -> tuple[list[int], list[int]]:
    """First token ids of every variant of the yes and the no words; ids shared by both sides are dropped."""
    def first_ids(words: Sequence[str]) -> set[int]:
        out = set()
        for w in words:
            for v in variants(w):
                ids = tok(v, add_special_tokens=False)["input_ids"]
                if ids:
                    out.add(ids[0])
        return out

    y, n = first_ids(yes), first_ids(no)
    return sorted(y - n), sorted(n - y)


def _norm(token: str) -> str:
    return token.replace("Ġ", " ").replace("▁", " ").strip().strip(string.punctuation).lower()


def p_yes_from_top(top: list[tuple[str, float]], yes: Sequence[str] = YES_WORDS,
                   no: Sequence[str] = NO_WORDS) -> tuple[float, float]:
    """``(P(yes), mass)`` from an endpoint's top alternatives; 0.5 when no verdict token is among them.

    A token counts for a side when it is one of its words or a prefix (>= 2 chars) of one of them only; tokens and
    words are compared normalised (so the judge's ``A``/``B`` match the tokens ``A``, `` A``, ``a``).
    """
    yes, no = [_norm(w) for w in yes], [_norm(w) for w in no]

    def side(t: str) -> int | None:
        if not t:
            return None
        on_yes = t in yes or (len(t) >= 2 and any(w.startswith(t) for w in yes))
        on_no = t in no or (len(t) >= 2 and any(w.startswith(t) for w in no))
        return 1 if on_yes and not on_no else 0 if on_no and not on_yes else None

    mass = [0.0, 0.0]
    for token, lp in top:
        s = side(_norm(token))
        if s is not None:
            mass[s] += math.exp(lp)
    total = mass[0] + mass[1]
    return (mass[1] / total if total > 0 else 0.5), total


def _cached(client: LLMClient, keys: list[str]) -> dict[int, Verdict]:
    hits: dict[int, Verdict] = {}
    if client.cache is None:
        return hits
    for i, k in enumerate(keys):
        row = client.cache.get(k)
        if row is not None:
            d = json.loads(row)
            hits[i] = Verdict(p_yes=d["p_yes"], mass=d["mass"], method=d["method"], cached=True)
    client.stats["cache_hits"] += len(hits)
    return hits


def local_verdicts(client: LLMClient, messages: list[list[dict]], *, cache_tag: str = "",
                   yes: Sequence[str] = YES_WORDS, no: Sequence[str] = NO_WORDS) -> list[Verdict]:
    """P(yes) from one forward pass per batch of a ``local:`` model (cached per conversation)."""
    import torch

    tag = f"{cache_tag}:probs:{','.join(yes)}/{','.join(no)}"
    keys = [client.cache_key(m, tag) for m in messages]
    out: dict[int, Verdict] = _cached(client, keys)
    todo = [i for i in range(len(messages)) if i not in out]
    if todo:
        model, tok, rt = client.local_model()
        yes_ids, no_ids = verdict_token_ids(tok, yes, no)
        texts = {i: tok.apply_chat_template(messages[i], add_generation_prompt=True, tokenize=False) for i in todo}
        order = sorted(todo, key=lambda i: len(texts[i]), reverse=True)
        device = next(model.parameters()).device
        with Counter("verdicts", len(order), enabled=len(order) > client.batch_size) as bar:
            for start in range(0, len(order), client.batch_size):
                idx = order[start:start + client.batch_size]
                enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {k: v.to(device) for k, v in enc.items()}
                pos = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                with torch.no_grad(), rt.autocast():
                    logits = model(**enc, position_ids=pos, logits_to_keep=1).logits[:, -1, :]
                probs = torch.softmax(logits.float(), dim=-1)
                p_y, p_n = probs[:, yes_ids].sum(-1).tolist(), probs[:, no_ids].sum(-1).tolist()
                client.stats["calls"] += len(idx)
                for i, a, b in zip(idx, p_y, p_n):
                    v = Verdict(p_yes=a / (a + b) if a + b > 0 else 0.5, mass=a + b, method="probs")
                    out[i] = v
                    if client.cache is not None:
                        client.cache.put(keys[i], json.dumps({"p_yes": v.p_yes, "mass": v.mass, "method": v.method}))
                bar.advance(len(idx))
    return [out[i] for i in range(len(messages))]


def _from_reply(reply, yes: Sequence[str], no: Sequence[str]) -> Verdict:
    if reply.top_logprobs is not None:
        p, mass = p_yes_from_top(reply.top_logprobs, yes, no)
        return Verdict(p_yes=p, mass=mass, method="logprobs", reply=reply.text, cached=reply.cached)
    return Verdict(p_yes=None, method="text", text_label=parse_verdict(reply.text), reply=reply.text,
                   error=reply.error, cached=reply.cached)


def http_verdicts(client: LLMClient, messages: list[list[dict]], *, cache_tag: str = "", text_max_tokens: int = 8,
                  yes: Sequence[str] = YES_WORDS, no: Sequence[str] = NO_WORDS) -> list[Verdict]:
    """P(yes) from the endpoint's top logprobs; the text fallback where the endpoint returns none."""
    if not messages:
        return []
    first = client.chat(messages[:1], cache_tag=cache_tag, max_tokens=1, logprobs=TOP_LOGPROBS)[0]
    if first.top_logprobs is not None:
        replies = client.chat(messages, cache_tag=cache_tag, max_tokens=1, logprobs=TOP_LOGPROBS)
    else:
        replies = client.chat(messages, cache_tag=cache_tag, max_tokens=text_max_tokens)
    return [_from_reply(r, yes, no) for r in replies]


def verdicts(client: LLMClient, messages: list[list[dict]], *, cache_tag: str = "", text_max_tokens: int = 8,
             yes: Sequence[str] = YES_WORDS, no: Sequence[str] = NO_WORDS) -> list[Verdict]:
    """One :class:`Verdict` per conversation, by the best method the backend allows."""
    if client.kind == "local":
        return local_verdicts(client, messages, cache_tag=cache_tag, yes=yes, no=no)
    return http_verdicts(client, messages, cache_tag=cache_tag, text_max_tokens=text_max_tokens, yes=yes, no=no)

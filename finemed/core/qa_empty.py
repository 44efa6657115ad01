"""Why an extractive-QA answer is empty: the model's greedy first token after the prompt, counted by kind.

lm-eval's ``generate_until`` cuts each generation at the task's stop string (``"\\n"`` for finemed's QA tasks) and
logs only what is left, so an empty answer hides its cause: the first token the model generated shows it.
:func:`finemed.core.lmeval.make_lm` records that token for every generation lm-eval runs; a prompt it missed costs
one extra forward pass. ``newline`` (the stop string came first: the model starts a new line after ``Answer:``),
``eos`` (the model ends the text), ``whitespace`` (spaces, then the stop), or ``other`` (the model wrote something
the filter stripped). The prompts are raw text, never a chat template (that is the task's design for every model),
so a count of ``newline`` or ``eos`` is the model's own behaviour at this prompt, not a bug in the harness. On the
vLLM backend the same question goes to the server
(:func:`explain_empty_served`: one greedy token per empty answer, no stop string).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from finemed.core.lmeval import prompt_key
from finemed.core.runtime import for_model

KINDS = ("newline", "eos", "whitespace", "other")


def first_token_kind(token_id: int, tokenizer) -> str:
    """``eos``, ``newline``, ``whitespace`` or ``other`` for one generated token id."""
    eos = tokenizer.eos_token_id
    if token_id == eos or (isinstance(eos, list) and token_id in eos):
        return "eos"
    return text_kind(tokenizer.decode([token_id]))


def text_kind(text: str, ended: bool = False) -> str:
    """The kind of a first generated piece of text; ``ended``: the generation stopped on EOS with nothing."""
    if ended and not text:
        return "eos"
    if "\n" in text and not text.split("\n", 1)[0].strip():
        return "newline"
    return "whitespace" if not text.strip() else "other"


def first_tokens(model, tokenizer, prompts: list[str], runtime=None) -> list[tuple[int, str]]:
    """Greedy first token after each prompt, as (token id, kind); one forward pass per prompt, no special tokens
    added (lm-eval's HFLM does not add BOS for these models either)."""
    import torch

    rt = runtime or for_model(model)
    device = next(model.parameters()).device
    out = []
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        with torch.no_grad(), rt.autocast():
            token = int(model(input_ids=ids).logits[0, -1].argmax())
        out.append((token, first_token_kind(token, tokenizer)))
    return out


def explain_empty(samples: list[dict], model, tokenizer, runtime=None,
                  recorded: dict[tuple[int, ...], int] | None = None) -> tuple[dict[str, int], dict[str, str]]:
    """``({kind: count}, {item id: kind})`` over the samples whose answer is empty (after the stop string cut).

    ``recorded``: the first tokens lm-eval's own generation produced (``make_lm(...).first_tokens``); a prompt found
    there needs no forward pass, and its kind is what the evaluated generation did, padding and batch included."""
    empty = _empty(samples)
    if not empty:
        return {}, {}
    prompts = [_prompt(s) for s in empty]
    known = {}
    for i, prompt in enumerate(prompts if recorded else []):
        token = recorded.get(prompt_key(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        if token is not None:
            known[i] = first_token_kind(token, tokenizer)
    rest = [i for i in range(len(prompts)) if i not in known]
    computed = first_tokens(model, tokenizer, [prompts[i] for i in rest], runtime) if rest else []
    known.update({i: kind for i, (_, kind) in zip(rest, computed)})
    kinds = [known[i] for i in range(len(prompts))]
    ids = [_item_id(s) for s in empty]
    return dict(Counter(kinds)), dict(zip(ids, kinds))


def explain_empty_served(samples: list[dict], completions_url: str, model: str,
                         timeout_s: float = 60.0) -> tuple[dict[str, int], dict[str, str]]:
    """:func:`explain_empty` against an OpenAI-compatible completions endpoint (the vLLM server lm-eval used): one
    greedy token per empty answer, with no stop string; ``finish_reason: stop`` with no text is ``eos``."""
    import httpx

    empty = _empty(samples)
    if not empty:
        return {}, {}
    kinds, ids = [], []
    with httpx.Client(timeout=timeout_s) as client:
        for s in empty:
            reply = client.post(completions_url, json={"model": model, "prompt": _prompt(s), "max_tokens": 1,
                                                      "temperature": 0.0})
            reply.raise_for_status()
            choice = reply.json()["choices"][0]
            kinds.append(text_kind(choice.get("text") or "", ended=choice.get("finish_reason") == "stop"))
            ids.append(_item_id(s))
    return dict(Counter(kinds)), dict(zip(ids, kinds))


def _empty(samples: list[dict]) -> list[dict]:
    """The samples whose answer is empty after the stop-string cut and the filter."""
    return [s for s in samples if not (s["filtered_resps"][0] if s["filtered_resps"] else "").strip()]


def _item_id(sample: dict[str, Any]) -> str:
    return str(sample["doc"].get("id", sample.get("doc_id")))


def _prompt(sample: dict[str, Any]) -> str:
    args = sample.get("arguments") or []
    if args and isinstance(args[0], (list, tuple)) and isinstance(args[0][0], str):
        return args[0][0]  # the context lm-eval generated from
    return sample["doc"]["prompt"]

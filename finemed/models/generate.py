"""Batched generation with a local HF model: the one loop used by the instruction probe, the local LLM
backend (labelling, judging, answers) and KD's reports.

Prompts are chat message lists (the chat template is applied) or plain strings (``chat=False``: raw
continuation, for few-shot prompts). Batches are left-padded and sorted by length so that padding stays
small; results come back in input order. ``model.generate`` does the decoding; this module adds batching,
the runtime's autocast, the EOS/stop-string cut and the finish reason that transformers does not return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from finemed.core.logs import Counter
from finemed.core.runtime import Runtime, for_model


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    new_tokens: int


def _prompt_texts(tok, prompts: Sequence[Any], chat: bool, system: str | None) -> list[str]:
    if not chat:
        return [str(p) for p in prompts]
    out = []
    for p in prompts:
        messages = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
        if system and not any(m.get("role") == "system" for m in messages):
            messages = [{"role": "system", "content": system}, *messages]
        out.append(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return out


def generate(model, tok, prompts: Sequence[Any], *, max_new_tokens: int = 256, batch_size: int = 8,
             chat: bool = True, system: str | None = None, temperature: float = 0.0, seed: int = 0,
             stop: Sequence[str] = (), runtime: Runtime | None = None, progress: str | None = None) -> list[Generation]:
    """Answers for ``prompts`` (greedy unless ``temperature > 0``), batched, in input order."""
    import torch

    rt = runtime or for_model(model)
    device = next(model.parameters()).device
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    texts = _prompt_texts(tok, prompts, chat, system)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    results: list[Generation | None] = [None] * len(texts)
    side, tok.padding_side = tok.padding_side, "left"
    was_training = model.training
    model.eval()
    gen_kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "eos_token_id": eos, "pad_token_id": pad}
    if temperature > 0:
        gen_kw.update(do_sample=True, temperature=temperature)
    else:
        gen_kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    try:
        with Counter(progress or "generate", len(texts), enabled=progress is not None) as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=not chat)
                enc = {k: v.to(device) for k, v in enc.items()}
                if temperature > 0:
                    torch.manual_seed(seed + start)
                with torch.no_grad(), rt.autocast():
                    out = model.generate(**enc, **gen_kw)
                for i, row in zip(idx, out[:, enc["input_ids"].shape[1]:].tolist()):
                    results[i] = _finish(tok, row, eos, pad, stop, max_new_tokens)
                bar.advance(len(idx))
    finally:
        tok.padding_side = side
        model.train(was_training)
    return results  # type: ignore[return-value]


def _finish(tok, row: list[int], eos: int | None, pad: int | None, stop: Sequence[str], limit: int) -> Generation:
    cut = len(row)
    for special in (eos, pad):
        if special is not None and special in row:
            cut = min(cut, row.index(special))
    text = tok.decode(row[:cut], skip_special_tokens=True)
    stopped = cut < len(row) or len(row) < limit
    for s in stop:
        pos = text.find(s)
        if pos >= 0:
            text, stopped = text[:pos], True
    return Generation(text=text.strip(), finish_reason="stop" if stopped else "length", new_tokens=cut)

"""``finemed eval generate``: answers of N models on one prompt set, as answer-JSONL rows.

Each model is an :class:`~finemed.llm.LLMClient` (a local HF dir / registered name → ``local:``, or an
OpenAI-compatible ``URL#MODEL``), so chat templates, batching, max tokens, seeds, retries and the response
cache are the client's. Rows: ``{model, prompt_id, prompt, answer, [reference], finish_reason}``; a failed
call is written with an empty answer and an ``error`` and counted, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finemed.config import FinemedError
from finemed.evaluation.answers import load_prompts, write_answers


def model_spec(model: str) -> str:
    """``URL#MODEL`` and ``local:…`` pass through; anything else is a local model dir or registered name."""
    return model if model.startswith(("http://", "https://", "local:")) else f"local:{model}"


def generate_answers(models: list[str], prompts: str, out: Path, *, limit: int | None = None, max_tokens: int = 256,
                     temperature: float = 0.0, seed: int = 0, batch_size: int = 8, concurrency: int = 8,
                     system: str | None = None, cache: Path | None = None, dtype: str = "float32") -> dict[str, Any]:
    from finemed.llm import LLMClient

    if not models:
        raise FinemedError("eval generate: no --model given; pass at least one model dir, name or URL#MODEL")
    rows_in = load_prompts(prompts, limit)
    rows: list[dict] = []
    stats: dict[str, dict] = {}
    for m in models:
        client = LLMClient(model_spec(m), cache_path=cache, concurrency=concurrency, max_tokens=max_tokens,
                           temperature=temperature, seed=seed, batch_size=batch_size, dtype=dtype)
        convs = [([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p.prompt}]
                 for p in rows_in]
        try:
            replies = client.chat(convs, cache_tag="generate")
        finally:
            client.close()
        for p, r in zip(rows_in, replies):
            row = {"model": m, "prompt_id": p.prompt_id, "prompt": p.prompt, "answer": r.text or "",
                   "finish_reason": r.finish_reason}
            if p.reference is not None:
                row["reference"] = p.reference
            if r.error:
                row["error"] = r.error
            rows.append(row)
        stats[m] = {**client.stats, "failed": sum(r.text is None for r in replies)}
    write_answers(Path(out), rows)
    return {"rows": len(rows), "prompts": len(rows_in), "models": stats, "out": str(out)}

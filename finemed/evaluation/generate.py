"""Stage ``eval.generate``: answers of N models on one prompt set, as answer-JSONL rows.

A local model (an HF dir or registered name, optionally written ``local:NAME``) is loaded on the runtime's
device and answers through :func:`finemed.models.generate.generate` (chat template, batching, EOS cut); an
OpenAI-compatible ``URL#MODEL`` answers through :class:`~finemed.llm.LLMClient` (concurrency, retries, the
SQLite response cache). Rows: ``{model, prompt_id, prompt, answer, [reference], finish_reason}``; a failed
call is written with an empty answer and an ``error`` and counted, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from finemed.config import FinemedError, StageConfig
from finemed.evaluation.answers import PromptRow, load_prompts, write_answers
from finemed.llm import LLMClient
from finemed.logs import get_logger
from finemed.models.generate import generate
from finemed.models.loading import load_causal_lm
from finemed.runtime import Device, DType, Runtime, resolve
from finemed.stages import StageResult, stage

log = get_logger(__name__)


class GenerateConfig(StageConfig):
    models: list[str] = Field(description="model dirs/names (local) or URL#MODEL (OpenAI-compatible server)")
    prompts: str = Field(description="builtin:germedbench_patient_text | builtin:germedbench_med_qa | "
                                     "builtin:germediq | a JSONL with 'prompt'")
    limit: int | None = Field(None, ge=1, description="first N prompts")
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    concurrency: int = Field(8, ge=1, description="parallel requests to a server model")
    system: str | None = None
    cache: str | None = Field(None, description="SQLite response cache for server models")
    device: Device = "auto"
    dtype: DType = "auto"


class GenerateResult(StageResult):
    key_metric: ClassVar[str] = "rows"
    rows: int
    prompts: int
    models: dict[str, dict[str, int]]
    answers: str


def is_remote(model: str) -> bool:
    return model.startswith(("http://", "https://"))


def _local_answers(model: str, rows: list[PromptRow], cfg: GenerateConfig, rt: Runtime):

    lm, tok = load_causal_lm(model.removeprefix("local:"), runtime=rt)
    gens = generate(lm, tok, [p.prompt for p in rows], max_new_tokens=cfg.max_tokens, batch_size=cfg.batch_size,
                    system=cfg.system, temperature=cfg.temperature, seed=cfg.seed, runtime=rt,
                    progress=f"generate {Path(model).name}")
    answers = [{"answer": g.text, "finish_reason": g.finish_reason} for g in gens]
    return answers, {"calls": len(rows), "failed": 0}


def _remote_answers(model: str, rows: list[PromptRow], cfg: GenerateConfig):

    client = LLMClient(model, cache_path=Path(cfg.cache) if cfg.cache else None, concurrency=cfg.concurrency,
                       max_tokens=cfg.max_tokens, temperature=cfg.temperature, seed=cfg.seed)
    system = [{"role": "system", "content": cfg.system}] if cfg.system else []
    convs = [system + [{"role": "user", "content": p.prompt}] for p in rows]
    try:
        replies = client.chat(convs, cache_tag="generate")
    finally:
        client.close()
    answers = [{"answer": r.text or "", "finish_reason": r.finish_reason, **({"error": r.error} if r.error else {})}
               for r in replies]
    return answers, {**client.stats, "failed": sum(r.text is None for r in replies)}


@stage("eval.generate")
def run(config: GenerateConfig, run_dir: Path) -> GenerateResult:
    """Stage entry: writes ``answers.jsonl`` (the input of ``eval.pairwise`` and ``eval.failures``)."""
    if not config.models:
        raise FinemedError("eval generate: no model given; pass at least one model dir, name or URL#MODEL")
    prompts = load_prompts(config.prompts, config.limit)
    rt = resolve(config.device, config.dtype) if not all(is_remote(m) for m in config.models) else None
    rows: list[dict] = []
    stats: dict[str, dict[str, int]] = {}
    for m in config.models:
        answers, stats[m] = _remote_answers(m, prompts, config) if is_remote(m) else \
            _local_answers(m, prompts, config, rt)
        for p, a in zip(prompts, answers):
            rows.append({"model": m, "prompt_id": p.prompt_id, "prompt": p.prompt, **a,
                         **({"reference": p.reference} if p.reference is not None else {})})
        log.info("generate %s: %d answers, %d failed", m, len(answers), stats[m]["failed"])
    out = write_answers(Path(run_dir) / "answers.jsonl", rows)
    return GenerateResult(rows=len(rows), prompts=len(prompts), models=stats, answers=str(out))

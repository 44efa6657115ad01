"""Stage ``eval.generate``: answers of N models on one prompt set, as answer-JSONL rows.

A local model (an HF dir or registered name, optionally written ``local:NAME``) answers on the ``engine`` that
:func:`finemed.core.engine.choose_engine` picks: ``vllm`` serves it with a managed vLLM server and asks it like an
endpoint; ``hf`` loads it on the runtime's device and answers through :func:`finemed.models.generate.generate`
(chat template, batching, EOS cut). The engine of each model is in the result (``engines``). An
OpenAI-compatible ``URL#MODEL`` answers through :class:`~finemed.core.llm.LLMClient` (concurrency, retries, the
SQLite response cache). Rows: ``{model, prompt_id, prompt, answer, [reference], finish_reason}``; a failed
call is written with an empty answer and an ``error`` and counted, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from finemed.core.config import FinemedError, StageConfig
from finemed.core.engine import Engine, VLLMSettings, choose_engine
from finemed.core.llm import LLMClient
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import decode_steps, gib, inference
from finemed.core.runtime import Device, DType, Runtime, resolve
from finemed.core.stages import StageResult, planner, stage
from finemed.core.texts import heldout_score
from finemed.evaluation.answers import PromptRow, load_prompts, write_answers
from finemed.models.generate import generate
from finemed.models.loading import load_causal_lm

log = get_logger(__name__)


class GenerateConfig(StageConfig):
    models: list[str] = Field(description="model dirs/names (local) or URL#MODEL (OpenAI-compatible server)")
    prompts: str = Field(description="builtin:germedbench_patient_text | builtin:germedbench_med_qa | "
                                     "builtin:germediq | a JSONL with 'prompt'")
    limit: int | None = Field(None, ge=1, description="first N prompts")
    # a seeded hash split of the prompt set (finemed.core.texts.heldout_score on the prompt text < heldout_fraction is
    # held out), so answers can be asked on prompts a fine-tune never saw; applied before ``limit``
    split: Literal["all", "heldout", "train"] = "all"
    heldout_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    split_seed: int = 0
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    concurrency: int = Field(8, ge=1, description="parallel requests to a server model")
    system: str | None = None
    cache: str | None = Field(None, description="SQLite response cache for server models")
    device: Device = "auto"
    dtype: DType = "auto"
    engine: Engine = Field("auto", description="local models: auto (vLLM where `make vllm` ran) | hf | vllm")
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)


class GenerateResult(StageResult):
    key_metric: ClassVar[str] = "rows"
    rows: int
    prompts: int
    models: dict[str, dict[str, int]]
    answers: str
    engines: dict[str, str] = {}  # model -> hf | vllm | http


def split_prompts(prompts: list[PromptRow], split: str, fraction: float, seed: int = 0) -> list[PromptRow]:
    """The ``heldout`` or ``train`` part of a prompt set by the seeded hash of each prompt's text (``all``: as is)."""
    if split == "all":
        return prompts
    return [p for p in prompts if (heldout_score(p.prompt, seed) < fraction) == (split == "heldout")]


def is_remote(model: str) -> bool:
    return model.startswith(("http://", "https://"))


def _local_answers(model: str, rows: list[PromptRow], cfg: GenerateConfig, rt: Runtime):

    lm, tok = load_causal_lm(model.removeprefix("local:"), runtime=rt)
    gens = generate(lm, tok, [p.prompt for p in rows], max_new_tokens=cfg.max_tokens, batch_size=cfg.batch_size,
                    system=cfg.system, temperature=cfg.temperature, seed=cfg.seed, runtime=rt,
                    progress=f"generate {Path(model).name}")
    answers = [{"answer": g.text, "finish_reason": g.finish_reason} for g in gens]
    return answers, {"calls": len(rows), "failed": 0}


def _remote_answers(model: str, rows: list[PromptRow], cfg: GenerateConfig, run_dir: Path):
    """An endpoint, or a local model on a managed vLLM server (its replies cached in the run dir)."""
    cache = Path(cfg.cache) if cfg.cache else None if is_remote(model) else Path(run_dir) / "responses.sqlite"
    client = LLMClient(model if is_remote(model) else f"local:{model.removeprefix('local:')}", cache_path=cache,
                       concurrency=cfg.concurrency, max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                       seed=cfg.seed, engine="vllm", vllm=cfg.vllm)
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
    prompts = split_prompts(load_prompts(config.prompts), config.split, config.heldout_fraction,
                            config.split_seed)[:config.limit]
    if not prompts:
        raise FinemedError(f"eval generate: no {config.split} prompts in {config.prompts!r} at heldout_fraction="
                           f"{config.heldout_fraction}; raise heldout_fraction or use split: all")
    engines = {m: "http" if is_remote(m) else choose_engine(config.engine, "eval generate") for m in config.models}
    rt = resolve(config.device, config.dtype) if "hf" in engines.values() else None
    rows: list[dict] = []
    stats: dict[str, dict[str, int]] = {}
    for m in config.models:
        answers, stats[m] = _local_answers(m, prompts, config, rt) if engines[m] == "hf" else \
            _remote_answers(m, prompts, config, run_dir)
        for p, a in zip(prompts, answers):
            rows.append({"model": m, "prompt_id": p.prompt_id, "prompt": p.prompt, **a,
                         **({"reference": p.reference} if p.reference is not None else {})})
        log.info("generate %s (%s): %d answers, %d failed", m, engines[m], len(answers), stats[m]["failed"])
    out = write_answers(Path(run_dir) / "answers.jsonl", rows)
    return GenerateResult(rows=len(rows), prompts=len(prompts), models=stats, answers=str(out), engines=engines)


# ------------------------------------------------------------------------------------------------ plan
@planner("eval.generate")
def plan(config: GenerateConfig, ctx) -> dict:
    """``finemed plan``: prompts x models answers; local models cost prefill + batched greedy decoding."""
    try:
        prompts = split_prompts(load_prompts(config.prompts), config.split, config.heldout_fraction,
                                config.split_seed)
        prompts = prompts[:config.limit]
        n, prompt_bytes = len(prompts), sum(len(p.prompt.encode("utf-8")) for p in prompts)
    except FinemedError:  # a prompt file an earlier stage writes: sized by limit (or 100 prompts)
        n = config.limit or 100
        prompt_bytes = n * 400
    prompt_tokens = prompt_bytes / 4
    local = [m for m in config.models if not is_remote(m)]
    costs = [inference(m, ctx, tokens=prompt_tokens + n * config.max_tokens,
                       decode_steps=decode_steps(n, config.batch_size, config.max_tokens)) for m in local]
    rows = n * len(config.models)
    return {"prompts": n, "models": len(config.models), "answer_models": list(config.models), "rows": rows,
            "generated_tokens_max": rows * config.max_tokens, "endpoint_calls": n * (len(config.models) - len(local)),
            "gpu_hours": round(sum(c.get("gpu_hours", 0.0) for c in costs), 6),
            "memory_gib_per_process": max((c.get("memory_gib_per_process", 0.0) for c in costs), default=0.0),
            "disk_gib": gib(rows * (prompt_bytes / max(n, 1) + 4 * config.max_tokens + 200)),
            "local_models": [[m, c.get("gpu_hours", c.get("note"))] for m, c in zip(local, costs)],
            "assumes": "every answer runs to max_tokens; 4 bytes/token; one model loaded at a time; endpoint "
                       "models cost their server's time, not counted here"}

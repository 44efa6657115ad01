"""``finemed plan`` for ``eval.qa`` and ``eval.mcq``: lm-eval requests, forward tokens, FLOPs and GPU-hours.

The requests follow lm-eval's task types: a QA task (``generate_until``) is one request per example, a prompt
prefill and up to ``max_gen_toks`` (32) greedy tokens; an MCQ task (``multiple_choice``) is one log-likelihood
request per option (prompt + option, no generation). Example counts come from the bundled data of finemed's
tasks (``tasks/finemed_*.yaml``: their ``metadata``), or :data:`STOCK_SIZES` for lm-eval's stock tasks.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from finemed.core.config import FinemedError
from finemed.core.plan_estimates import count_rows, decode_steps, earlier, gib, inference
from finemed.data.loaders import load_germedbench, load_squad

TASK_DIR = Path(__file__).resolve().parents[1] / "core" / "lmeval_tasks"
QA_MAX_GEN_TOKS = 32  # tasks/finemed_qa_common_yaml generation_kwargs
# lm-eval stock tasks: test-split sizes (MMLU subjects; Global-MMLU keeps MMLU's questions); others: DEFAULT
STOCK_SIZES = {"anatomy": 135, "clinical_knowledge": 265, "college_medicine": 173, "medical_genetics": 100,
               "professional_medicine": 272, "college_biology": 144, "nutrition": 306, "virology": 166}
STOCK_DEFAULT = 500
STOCK_PROMPT_BYTES, STOCK_CHOICES = 600, 4


@lru_cache(maxsize=32)
def _metadata(task: str) -> dict[str, Any] | None:
    name = task if task.startswith("finemed_") else f"finemed_{task}"
    path = TASK_DIR / f"{name}.yaml"
    if not path.is_file():
        return None
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("metadata") or {}


def _bundled(dataset: str) -> str:
    return "squad_v1.1" if dataset == "squad_v1" else dataset.replace("_", ".", 1)


@lru_cache(maxsize=32)
def _qa_sizes(dataset: str, data: str | None) -> list[int]:
    """Bytes of each example's context + question (a user file replaces only squad_v1)."""
    examples = load_squad(data) if data and dataset == "squad_v1" else load_squad(name=_bundled(dataset))
    return [len(e.context.encode()) + len(e.question.encode()) + 40 for e in examples]


@lru_cache(maxsize=4)
def _medqa_sizes() -> list[tuple[int, int]]:
    """(prompt bytes, options) of each GerMedBench med_qa item."""
    rows = load_germedbench("med_qa")
    return [(len(r["question"].encode()) + sum(len(str(v).encode()) for v in r["options"].values()) + 80,
             len(r["options"])) for r in rows]


def task_requests(task: str, limit: int | None, data: str | None, ctx=None) -> dict[str, Any]:
    """``{type, examples, requests, prompt_tokens, generated_tokens, source}`` of one task."""
    meta = _metadata(task)
    prior = earlier(ctx, data)
    if meta is not None and "dataset" in meta and prior and meta["dataset"] == "squad_v1":
        n = min(prior.get("test_questions", 0), limit or 10**12)
        avg, shots = prior.get("test_context_bytes", 700) + 100, int(meta.get("shots", 0))
        return {"type": "generate_until", "examples": n, "requests": n, "prompt_tokens": (1 + shots) * avg * n / 4,
                "generated_tokens": QA_MAX_GEN_TOKS * n, "source": f"the earlier stage's test file, {shots}-shot"}
    if meta is not None and "dataset" in meta:
        sizes = _qa_sizes(meta["dataset"], data)[:limit] if limit else _qa_sizes(meta["dataset"], data)
        shots = int(meta.get("shots", 0))
        avg = sum(sizes) / max(len(sizes), 1)
        return {"type": "generate_until", "examples": len(sizes), "requests": len(sizes),
                "prompt_tokens": (1 + shots) * avg * len(sizes) / 4, "generated_tokens": QA_MAX_GEN_TOKS * len(sizes),
                "source": f"bundled {meta['dataset']}, {shots}-shot"}
    if meta is not None and meta.get("source") == "germedbench_med_qa":
        items = _medqa_sizes()[:limit] if limit else _medqa_sizes()
        return {"type": "multiple_choice", "examples": len(items), "requests": sum(o for _, o in items),
                "prompt_tokens": sum(b * o for b, o in items) / 4, "generated_tokens": 0,
                "source": "bundled GerMedBench med_qa"}
    n = count_rows(data) if meta is not None else None  # mcq_file: the user's file, where it is jsonl/parquet
    subject = re.sub(r"^.*?_(?=(" + "|".join(STOCK_SIZES) + r")$)", "", task)
    n = n or STOCK_SIZES.get(subject, STOCK_DEFAULT)
    n = min(n, limit) if limit else n
    return {"type": "multiple_choice", "examples": n, "requests": n * STOCK_CHOICES,
            "prompt_tokens": n * STOCK_CHOICES * STOCK_PROMPT_BYTES / 4, "generated_tokens": 0,
            "source": f"{'the given file' if meta is not None else 'lm-eval stock task'}: {n} examples, "
                      f"{STOCK_CHOICES} options, ~{STOCK_PROMPT_BYTES} bytes each (assumed)"}


def lmeval_estimate(model: str, tasks: list[str], *, limit: int | None, batch_size: int, data: str | None,
                    ctx) -> dict[str, Any]:
    """The stage's estimate: requests and tokens per task, then FLOPs, GPU-hours and memory of ``model``."""
    per_task: dict[str, dict[str, Any]] = {}
    for task in tasks:
        try:
            per_task[task] = task_requests(task, limit, data, ctx)
        except (FinemedError, OSError) as err:
            per_task[task] = {"requests": 0, "prompt_tokens": 0, "generated_tokens": 0, "examples": 0,
                              "source": f"not countable now: {err}"}
    prompt = sum(t["prompt_tokens"] for t in per_task.values())
    generated = sum(t["generated_tokens"] for t in per_task.values())
    steps = sum(decode_steps(t["requests"], batch_size, QA_MAX_GEN_TOKS) for t in per_task.values()
                if t.get("type") == "generate_until")
    cost = inference(model, ctx, tokens=prompt + generated, decode_steps=steps)
    requests = sum(t["requests"] for t in per_task.values())
    return {**cost, "requests": requests, "examples": {k: v["examples"] for k, v in per_task.items()},
            "prompt_tokens": int(prompt), "generated_tokens_max": int(generated),
            "disk_gib": gib(requests * 2000),
            "assumes": "4 bytes/token; QA answers run to 32 tokens, greedy, batched by batch_size; MCQ: one "
                       "log-likelihood request per option; samples log ~2 KB per request; "
                       + "; ".join(f"{k}: {v['source']}" for k, v in per_task.items())}

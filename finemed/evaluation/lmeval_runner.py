"""Run finemed's lm-eval tasks on a model *object* (DESIGN.md tokenizer trap: never let lm-eval reload a path).

``make_lm`` wraps an already-loaded (model, tokenizer) in lm-eval's ``HFLM``; ``evaluate`` runs tasks from
``finemed/evaluation/tasks`` through ``lm_eval.simple_evaluate`` with a ``TaskManager(include_path=...)`` and
returns lm-eval's metrics plus the logged samples.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from finemed.config import FinemedError

TASKS_DIR = Path(__file__).parent / "tasks"


def make_lm(model, tokenizer, *, batch_size: int = 8, max_length: int | None = None):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length,
                device=str(model.device))


def task_manager(metadata: dict[str, Any] | None = None):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), metadata=metadata or {}, include_defaults=False)


def evaluate(lm, tasks: list[str], *, limit: int | None = None, metadata: dict[str, Any] | None = None,
             seed: int = 0) -> dict[str, Any]:
    """``{"results": {task: {metric: value}}, "samples": {task: [...]}}`` from lm-eval."""
    import lm_eval

    tm = task_manager(metadata)
    unknown = [t for t in tasks if t not in tm.all_tasks]
    if unknown:
        have = ", ".join(t for t in tm.all_tasks if t.startswith("finemed_"))
        raise FinemedError(f"unknown lm-eval task(s) {', '.join(unknown)}; finemed ships: {have}")
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    out = lm_eval.simple_evaluate(model=lm, tasks=tasks, limit=limit, task_manager=tm, log_samples=True,
                                  random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                  fewshot_random_seed=seed, bootstrap_iters=0)
    results = {t: {k.split(",")[0]: v for k, v in r.items() if isinstance(v, (int, float)) and "stderr" not in k}
               for t, r in out["results"].items()}
    return {"results": results, "samples": out.get("samples", {})}

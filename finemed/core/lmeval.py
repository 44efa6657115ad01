"""Run lm-eval tasks on a model *object* (DESIGN.md tokenizer trap: never let lm-eval reload a path).

``make_lm`` wraps an already-loaded (model, tokenizer) in lm-eval's ``HFLM`` on the model's device;
``make_server_lm`` points lm-eval's ``local-completions`` at a managed vLLM server (``backend: vllm``);
``resolve_tasks`` maps task names to lm-eval names through lm-eval's own index: finemed's tasks are the YAMLs
in ``finemed/core/lmeval_tasks`` (and any extra ``task_dirs``) tagged ``finemed_qa`` / ``finemed_mcq``, named
short (``xquad_de_0shot``) or full (``finemed_xquad_de_0shot``); any other name is looked up among lm-eval's
stock tasks (indexing those is slow, so only then). ``evaluate`` runs them through ``lm_eval.simple_evaluate``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finemed.core.config import FinemedError
from finemed.core.engine import VLLMSettings, choose_engine, serve

TASKS_DIR = Path(__file__).parent / "lmeval_tasks"
FINEMED_TAGS = ("finemed_qa", "finemed_mcq")


def make_lm(model, tokenizer, *, batch_size: int = 8, max_length: int | None = None, mixed_precision=None):
    """lm-eval's ``HFLM`` on the loaded model, recording the first token of each generation (``first_tokens``)."""
    return _recording_hflm()(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length,
                             device=str(model.device), mixed_precision_dtype=mixed_precision)


def prompt_key(token_ids) -> tuple[int, ...]:
    """The key ``first_tokens`` files a generation under: the prompt's last ``KEY_TOKENS`` token ids (unpadded; a
    left-truncated prompt keeps them)."""
    return tuple(int(t) for t in list(token_ids)[-KEY_TOKENS:])


KEY_TOKENS = 48


@functools.cache
def _recording_hflm():
    """A subclass of lm-eval's ``HFLM`` whose ``_model_generate`` keeps the first generated token id of every row,
    keyed by :func:`prompt_key`. lm-eval logs only the text left after the stop string, so without it an empty QA
    answer's cause costs a second forward pass on its prompt (:mod:`finemed.core.qa_empty`)."""
    from lm_eval.models.huggingface import HFLM

    class RecordingHFLM(HFLM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.first_tokens: dict[tuple[int, ...], int] = {}

        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            out = super()._model_generate(context, max_length, stop, **generation_kwargs)
            mask = generation_kwargs.get("attention_mask")
            width = context.shape[1]
            if out.shape[1] > width:
                for row in range(context.shape[0]):
                    ids = context[row] if mask is None else context[row][mask[row].bool()]
                    self.first_tokens[prompt_key(ids.tolist())] = int(out[row, width])
            return out

    return RecordingHFLM


def choose_backend(backend: str) -> str:
    """``hf`` (lm-eval's HFLM on our model object) or ``vllm`` (lm-eval's ``local-completions`` against a managed
    vLLM server): the engine policy of :func:`finemed.core.engine.choose_engine`, for CPU and GPU alike."""
    return choose_engine(backend, "eval qa/mcq backend")


def make_server_lm(model_dir: str | Path, *, vllm: VLLMSettings | None = None, batch_size: int = 8,
                   concurrency: int = 8, max_length: int | None = None):
    """lm-eval's ``local-completions`` model on a managed vLLM server for ``model_dir``
    (:func:`finemed.core.engine.serve`):
    generation through ``/v1/completions``; log-likelihoods from the prompt's logprobs (``echo: true``), the
    requests sent as token ids of the model's own tokenizer. Returns ``(lm, server)``."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    settings = vllm or VLLMSettings()
    server = serve(model_dir, settings)
    lm = LocalCompletionsAPI(base_url=f"{server.base_url}/completions", model=server.name, tokenizer=str(server.model),
                             tokenizer_backend="huggingface", tokenized_requests=True, num_concurrent=concurrency,
                             batch_size=batch_size, max_retries=3, timeout=600,
                             max_length=max_length or settings.max_model_len or 2048)
    return lm, server


def task_manager(metadata: dict[str, Any] | None = None, *, task_dirs: list[str | Path] = (),
                 include_defaults: bool = False):
    from lm_eval.tasks import TaskManager

    paths = [str(TASKS_DIR), *(str(Path(d)) for d in task_dirs)]
    return TaskManager(include_path=paths, metadata=metadata or {}, include_defaults=include_defaults)


def finemed_tasks(tm) -> dict[str, str]:
    """``{full_name: tag}`` of every task tagged ``finemed_qa`` / ``finemed_mcq`` in ``tm``'s index."""
    out: dict[str, str] = {}
    for tag in FINEMED_TAGS:
        entry = tm.task_index.get(tag)
        for name in sorted(entry.tags if entry is not None else ()):
            out[name] = tag
    return out


@dataclass
class TaskPlan:
    """Resolved task names: ``names`` maps each asked name to lm-eval's; ``tags`` the finemed tag of each."""

    names: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    stock: bool = False  # some name is one of lm-eval's stock tasks (the manager must index them)


def resolve_tasks(asked: list[str], *, task_dirs: list[str | Path] = ()) -> TaskPlan:
    """Map names to lm-eval task names; one line naming the unknown ones otherwise."""
    if not asked:
        raise FinemedError("eval: no tasks given; name at least one, e.g. tasks: [xquad_de_0shot]")
    ours = finemed_tasks(task_manager(task_dirs=task_dirs))
    plan = TaskPlan(names={})
    rest = []
    for name in asked:
        full = name if name in ours else f"finemed_{name}"
        if full in ours:
            plan.names[name], plan.tags[name] = full, ours[full]
        else:
            rest.append(name)
    if rest:
        stock = task_manager(task_dirs=task_dirs, include_defaults=True).all_tasks
        unknown = [n for n in rest if n not in stock]
        if unknown:
            short = ", ".join(sorted(n.removeprefix("finemed_") for n in ours))
            raise FinemedError(f"eval task(s) {', '.join(unknown)} unknown: neither a finemed task ({short}) "
                               f"nor an lm-eval task (see `lm_eval ls tasks`)")
        plan.names.update({n: n for n in rest})
        plan.stock = True
    return plan


def evaluate(lm, tasks: list[str], *, limit: int | None = None, metadata: dict[str, Any] | None = None,
             seed: int = 0, task_dirs: list[str | Path] = (), stock: bool = False) -> dict[str, Any]:
    """``{"results": {task: {metric: value}}, "samples": {task: [...]}}`` from lm-eval."""
    import lm_eval

    tm = task_manager(metadata, task_dirs=task_dirs, include_defaults=stock)
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    out = lm_eval.simple_evaluate(model=lm, tasks=tasks, limit=limit, task_manager=tm, log_samples=True,
                                  random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                  fewshot_random_seed=seed, bootstrap_iters=0)
    results = {t: {k.split(",")[0]: v for k, v in r.items() if isinstance(v, (int, float)) and "stderr" not in k}
               for t, r in out["results"].items()}
    return {"results": results, "samples": out.get("samples", {})}

"""QA evaluation through lm-eval on a model object: extractive QA (XQuAD/MLQA/SQuAD, 0/1-shot) or any lm-eval task.

The machinery of the ``eval.qa`` stage, on the ground floor because ``merge.sweep``'s QA dev guard scores the same
way.

lm-eval generates (greedy, stop at newline) and scores log-likelihoods; finemed's task YAMLs (tagged
``finemed_qa`` / ``finemed_mcq`` in ``finemed/core/lmeval_tasks``) supply local data, the prompts of
:mod:`qa_prompts` and the metrics of :mod:`qa_metrics`; a name that is no finemed task is one of lm-eval's
stock tasks (``global_mmlu_full_de_medical_genetics``). Each task runs on its own so its examples/s is
measured; a finemed QA task's predictions are written as ``predictions_<task>.json`` (``{id: answer}``),
which ``finemed eval qa-score`` rescores exactly like the official scripts, and every task's per-item scores as
``items_<task>.json`` (``{id: {metric: value}}``), which ``eval.scoreboard`` pairs across models.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from finemed.core.artifacts import atomic_write_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.engine import VLLMSettings
from finemed.core.lmeval import TaskPlan, choose_backend, evaluate, make_lm, make_server_lm, resolve_tasks
from finemed.core.logs import get_logger
from finemed.core.qa_empty import KINDS, explain_empty, explain_empty_served
from finemed.core.runtime import Device, DType, Runtime, for_model, resolve
from finemed.core.stages import StageResult
from finemed.data.registry import require_file
from finemed.models.loading import check_weights, load_causal_lm
from finemed.models.registry import resolve_model_path

log = get_logger(__name__)
Metrics = dict[str, float | int | None]


class QaEvalConfig(StageConfig):
    model: str = Field("smollm2", description="HF model dir or registered name (smollm2)")
    tasks: list[str] = ["xquad_de_0shot", "xquad_de_1shot"]
    task_dirs: list[str] = Field([], description="extra lm-eval task dirs (YAMLs tagged finemed_qa/finemed_mcq)")
    limit: int | None = Field(100, ge=1, description="first N examples per task (None: all)")
    batch_size: int = Field(8, ge=1)
    device: Device = "auto"
    dtype: DType = "auto"
    seed: int = 0
    data: str | None = Field(None, description="SQuAD-format file for squad_v1_*, CSV/JSON for mcq_file")
    max_length: int | None = None
    allow_pickle: bool = False
    # auto: vLLM (a managed server, lm-eval's local-completions) where `make vllm` ran, else hf (HFLM in-process)
    backend: Literal["auto", "hf", "vllm"] = "auto"
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)
    concurrency: int = Field(8, ge=1, description="parallel requests to the vLLM server")


class QaEvalResult(StageResult):
    key_metric: ClassVar[str] = "summary"
    model: str
    backend: str = "hf"  # the lm-eval backend that ran: hf | vllm
    tasks: dict[str, Metrics]
    summary: str


def _predictions(samples: list[dict]) -> dict[str, str]:
    return {str(s["doc"].get("id", s.get("doc_id"))): (s["filtered_resps"][0] if s["filtered_resps"] else "").strip()
            for s in samples}


def item_scores(samples: list[dict]) -> dict[str, dict[str, Any]]:
    """Per-item scores ``{id: {metric: value}}`` from lm-eval's logged samples, for paired comparisons
    (``eval.scoreboard``). A multiple-choice item also keeps its gold index, each option's log-likelihood and its
    length in characters (what ``acc`` and the length-normalised ``acc_norm`` chose between: lm-eval's
    ``acc_norm`` divides by ``len(choice)``, characters; its per-byte variant is ``acc_bytes``)."""
    out: dict[str, dict[str, Any]] = {}
    for s in samples:
        row: dict[str, Any] = {m: s[m] for m in s.get("metrics", []) if isinstance(s.get(m), (int, float))}
        choices = s["doc"].get("choices")
        if isinstance(choices, list) and len(s.get("filtered_resps", [])) == len(choices):
            row.update(label=s["doc"].get("label"),
                       option_ll=[round(float(r[0] if isinstance(r, (list, tuple)) else r), 4)
                                  for r in s["filtered_resps"]],
                       option_chars=[len(str(c)) for c in choices])
        out[str(s["doc"].get("id", s.get("doc_id")))] = row
    return out


def _summary(tasks: dict[str, Metrics]) -> str:
    parts = []
    for name, r in tasks.items():
        if "exact_match" in r and "f1" in r:
            parts.append(f"{name} EM {r['exact_match']:.1f} F1 {r['f1']:.1f}")
        elif "acc" in r:
            parts.append(f"{name} acc {100 * r['acc']:.1f}")
    return "; ".join(parts)


def evaluate_model(model, tokenizer, config: QaEvalConfig, out_dir: Path | None = None, *,
                   plan: TaskPlan | None = None, runtime: Runtime | None = None, lm: Any = None) -> dict[str, Any]:
    """Run ``config.tasks`` on a loaded model (or a ready lm-eval ``lm``); return ``{"tasks": ..., "summary": ...}``."""
    plan = plan or resolve_tasks(config.tasks, task_dirs=config.task_dirs)
    if any(full == "finemed_mcq_file" for full in plan.names.values()) and not config.data:
        raise FinemedError("task mcq_file needs --data FILE (CSV in MMLU layout or JSON/JSONL in MedQA layout)")
    if lm is None:
        rt = runtime or for_model(model)
        lm = make_lm(model, tokenizer, batch_size=config.batch_size, max_length=config.max_length,
                     mixed_precision=rt.autocast_dtype)
    meta = {"seed": config.seed, **({"path": str(config.data)} if config.data else {})}
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    served = model is None and isinstance(lm, LocalCompletionsAPI)  # lm-eval on a vLLM server (make_server_lm)
    tasks: dict[str, Metrics] = {}
    for name, full in plan.names.items():
        t0 = time.perf_counter()
        out = evaluate(lm, [full], limit=config.limit, metadata=meta, seed=config.seed, task_dirs=config.task_dirs,
                       stock=plan.stock and name not in plan.tags)
        secs = time.perf_counter() - t0
        res: Metrics = dict(out["results"].get(full, {}))
        samples = out["samples"].get(full, [])
        n = int(res.pop("sample_len", None) or len(samples) or sum(len(s) for s in out["samples"].values()))
        res.update(n=n, seconds=round(secs, 2), examples_per_s=round(n / secs, 3) if secs else None)
        tasks[name] = res
        if out_dir is not None and plan.tags.get(name) == "finemed_qa":
            atomic_write_json(Path(out_dir) / f"predictions_{name}.json", _predictions(samples))
        items = item_scores(samples)
        if plan.tags.get(name) == "finemed_qa" and (model is not None or served):  # why answers are empty
            counts, why = (explain_empty(samples, model, tokenizer, runtime, getattr(lm, "first_tokens", None))
                           if model is not None else
                           explain_empty_served(samples, lm.base_url, lm.model))
            res.update(empty=sum(counts.values()), **{f"empty_{k}": counts.get(k, 0) for k in KINDS})
            for item_id, kind in why.items():
                items.setdefault(item_id, {})["empty_first_token"] = kind
        if out_dir is not None and samples:
            atomic_write_json(Path(out_dir) / f"items_{name}.json", items)
    return {"tasks": tasks, "summary": _summary(tasks)}


def run_eval(config: QaEvalConfig, run_dir: Path) -> QaEvalResult:
    """Check the tasks and data, load the model on the runtime's device, evaluate, write ``qa_results.json``."""
    plan = resolve_tasks(config.tasks, task_dirs=config.task_dirs)  # fail on bad input before the slow load
    if config.data:
        require_file(config.data, "--data file (SQuAD-format JSON, or MCQ CSV/JSON)")

    backend = choose_backend(config.backend)
    if backend == "vllm":
        path = resolve_model_path(config.model)
        check_weights(path, allow_pickle=False)
        lm, server = make_server_lm(path, vllm=config.vllm, batch_size=config.batch_size,
                                    concurrency=config.concurrency, max_length=config.max_length)
        log.info("eval %s on vLLM %s", ", ".join(config.tasks), server.base_url)
        try:
            scores = evaluate_model(None, None, config, run_dir, plan=plan, lm=lm)
        except Exception:
            dead = server.died()  # the server's one line, not lm-eval's retry traceback
            if dead:
                raise FinemedError(dead) from None
            raise
    else:
        rt = resolve(config.device, config.dtype)
        log.info("eval %s on %s with the hf backend", ", ".join(config.tasks), rt.describe())
        model, tok = load_causal_lm(config.model, runtime=rt, allow_pickle=config.allow_pickle)
        scores = evaluate_model(model, tok, config, run_dir, plan=plan, runtime=rt)
    result = QaEvalResult(model=config.model, backend=backend, **scores)
    atomic_write_json(Path(run_dir) / "qa_results.json", result)
    return result

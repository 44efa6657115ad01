"""``eval.qa`` stage: QA (XQuAD/MLQA/SQuAD, 0/1-shot) and MCQ tasks through lm-eval on a model object.

lm-eval generates (greedy, stop at newline) and scores log-likelihoods; finemed's task YAMLs supply local
data, the prompts of :mod:`qa_prompts` and the metrics of :mod:`qa_metrics`. Each task runs on its own so
its examples/s is measured; the predictions are written as ``predictions_<task>.json`` (``{id: answer}``),
which ``finemed eval qa-score`` rescores exactly like the official scripts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field

from finemed.artifacts import atomic_write_json
from finemed.config import FinemedError, StageConfig

QA_TASKS = [f"{d}_{s}shot" for d in ("xquad_de", "xquad_en", "xquad_es", "mlqa_de", "squad_v1") for s in (0, 1)]
MCQ_TASKS = ["germedbench_medqa", "mcq_file"]


class QaEvalConfig(StageConfig):
    model: str = Field(description="HF model dir or registered name (smollm2)")
    tasks: list[str] = ["xquad_de_0shot", "xquad_de_1shot"]
    limit: int | None = Field(100, description="first N examples per task (None: all)")
    batch_size: int = 8
    dtype: str = "bfloat16"
    seed: int = 0
    data: str | None = Field(None, description="SQuAD-format file for squad_v1_*, CSV/JSON for mcq_file")
    max_length: int | None = None
    allow_pickle: bool = False


def _task_name(short: str) -> str:
    if short not in QA_TASKS + MCQ_TASKS:
        raise FinemedError(f"eval task {short!r} unknown; expected one of {', '.join(QA_TASKS + MCQ_TASKS)}")
    return f"finemed_{short}"


def _predictions(samples: list[dict]) -> dict[str, str]:
    return {s["doc"]["id"]: (s["filtered_resps"][0] if s["filtered_resps"] else "").strip() for s in samples}


def _summary(tasks: dict[str, dict]) -> str:
    parts = []
    for name, r in tasks.items():
        if "exact_match" in r:
            parts.append(f"{name} EM {r['exact_match']:.1f} F1 {r['f1']:.1f}")
        elif "acc" in r:
            parts.append(f"{name} acc {100 * r['acc']:.1f}")
    return "; ".join(parts)


def evaluate_model(model, tokenizer, config: QaEvalConfig, out_dir: Path | None = None) -> dict[str, Any]:
    """Run ``config.tasks`` on a loaded model; return ``{"tasks": {short: metrics}, "summary": str}``."""
    from finemed.evaluation.lmeval_runner import evaluate, make_lm

    names = {t: _task_name(t) for t in config.tasks}
    if any(t.startswith("mcq_file") for t in config.tasks) and not config.data:
        raise FinemedError("task mcq_file needs --data FILE (CSV in MMLU layout or JSON/JSONL in MedQA layout)")
    lm = make_lm(model, tokenizer, batch_size=config.batch_size, max_length=config.max_length)
    meta = {"seed": config.seed, **({"path": str(config.data)} if config.data else {})}
    tasks: dict[str, dict] = {}
    for short, full in names.items():
        t0 = time.perf_counter()
        out = evaluate(lm, [full], limit=config.limit, metadata=meta, seed=config.seed)
        secs = time.perf_counter() - t0
        res = dict(out["results"][full])
        samples = out["samples"].get(full, [])
        n = int(res.pop("sample_len", len(samples)))
        res.update(n=n, seconds=round(secs, 2), examples_per_s=round(n / secs, 3) if secs else None)
        tasks[short] = res
        if out_dir is not None and short in QA_TASKS:
            atomic_write_json(out_dir / f"predictions_{short}.json", _predictions(samples))
    return {"tasks": tasks, "summary": _summary(tasks)}


def run(config: QaEvalConfig, run_dir: Path) -> dict[str, Any]:
    from finemed.models.loading import load_causal_lm

    run_dir = Path(run_dir)
    for t in config.tasks:  # fail on bad input before the (slow) model load
        _task_name(t)
    if config.data:
        from finemed.data.registry import require_file

        require_file(config.data, "--data file (SQuAD-format JSON, or MCQ CSV/JSON)")
    model, tok = load_causal_lm(config.model, dtype=config.dtype, allow_pickle=config.allow_pickle)
    result = {"model": config.model, **evaluate_model(model, tok, config, run_dir)}
    atomic_write_json(run_dir / "qa_results.json", result)
    atomic_write_json(run_dir / "metrics.json", result)
    return result

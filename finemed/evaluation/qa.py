"""Stage ``eval.qa``: extractive QA or any lm-eval task on a model; the machinery is :mod:`finemed.core.qa_eval`."""

from __future__ import annotations

from pathlib import Path

from finemed.core.qa_eval import QaEvalConfig, QaEvalResult, run_eval
from finemed.core.stages import planner, stage
from finemed.evaluation.lmeval_plan import lmeval_estimate


@stage("eval.qa")
def run(config: QaEvalConfig, run_dir: Path) -> QaEvalResult:
    """Stage entry: QA (or any lm-eval) tasks; writes ``qa_results.json`` and ``predictions_<task>.json``."""
    return run_eval(config, run_dir)


@planner("eval.qa")
def plan(config: QaEvalConfig, ctx) -> dict:
    """``finemed plan``: lm-eval requests per task, forward tokens, FLOPs, GPU-hours, memory (lmeval_plan)."""
    return lmeval_estimate(config.model, config.tasks, limit=config.limit, batch_size=config.batch_size,
                           data=config.data, ctx=ctx)

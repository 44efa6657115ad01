"""Stage ``eval.mcq``: multiple-choice (MMLU-de / MedQA-de style) accuracy through lm-eval.

lm-eval does the scoring (``output_type: multiple_choice``: log-likelihood of each option text after the
prompt; ``acc`` and the character-length-normalised ``acc_norm``); the items and their loaders live in
:mod:`finemed.data.mcq`.

The stage runs ``tasks`` (default: ``germedbench_medqa``, or ``mcq_file`` when ``data`` is given; any
finemed- or lm-eval task name works, e.g. ``global_mmlu_full_de_medical_genetics``) like ``eval.qa``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from finemed.core.qa_eval import QaEvalConfig, QaEvalResult, run_eval
from finemed.core.stages import planner, stage
from finemed.evaluation.lmeval_plan import lmeval_estimate


class McqEvalConfig(QaEvalConfig):
    """``tasks`` empty: ``mcq_file`` when ``data`` is given, else ``germedbench_medqa``."""

    tasks: list[str] = []
    limit: int | None = Field(None, ge=1)  # first N questions per task (None: all)


@stage("eval.mcq")
def run(config: McqEvalConfig, run_dir: Path) -> QaEvalResult:
    """Stage entry: multiple-choice accuracy (acc, character-length-normalised acc_norm) by log-likelihood."""
    if not config.tasks:
        config = config.model_copy(update={"tasks": ["mcq_file" if config.data else "germedbench_medqa"]})
    return run_eval(config, run_dir)


@planner("eval.mcq")
def plan(config: McqEvalConfig, ctx) -> dict:
    """``finemed plan``: one log-likelihood request per option of each question (lmeval_plan)."""
    tasks = config.tasks or ["mcq_file" if config.data else "germedbench_medqa"]
    return lmeval_estimate(config.model, tasks, limit=config.limit, batch_size=config.batch_size,
                           data=config.data, ctx=ctx)

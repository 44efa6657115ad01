"""Stage ``corpus.build`` (``finemed corpus build``): the whole FineMed-de chain on datatrove.

The chain is ``pipeline.steps`` (:mod:`finemed.corpus.pipeline`). Without ``classifier`` the default fastText
classifier is trained on the dev input (cached by its fingerprint), and only when a step needs it. Writes
``DIR/output/*.parquet`` (FineWeb2 schema + ``domain_score``/PII counts, input ``id`` kept),
``DIR/stats.json`` (funnel, reasons, totals, dropped samples) and ``DIR/funnel.png``; the runner writes
``metrics.json`` from the Result. Reruns skip finished tasks through datatrove's completion markers.
``DIR/build.json`` keeps what :func:`finalize` needs to write the stats from the per-task logs, which
``finemed corpus finalize DIR`` does after Slurm jobs (submitted after the last stage, ``afterok``).
datatrove is imported only when a build runs (:func:`finemed.corpus.registry.heavy`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from finemed.core.artifacts import atomic_write_json, read_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.plan_estimates import earlier
from finemed.core.stages import StageResult, planner, stage
from finemed.corpus.corpus_plan import build_cost, docs_in
from finemed.corpus.executors import ExecutorConfig, execute
from finemed.corpus.pipeline import PipelineConfig
from finemed.corpus.registry import heavy
from finemed.corpus.rows import check_text_column, count_input_files, first_row_columns, input_format, read_rows
from finemed.corpus.sample_input import default_dev_input
from finemed.corpus.scorers import classifier_meta, classifier_threshold
from finemed.corpus.stats import (
    block_stats,
    decont_counts,
    dropped_samples,
    funnel,
    merge_task_stats,
    output_totals,
    plot_funnel,
    source_survival,
)
from finemed.corpus.train_classifier import cached_default_classifier

BUILD_INFO = "build.json"
STAGES = ("filter", "minhash_buckets", "minhash_cluster", "final")


class CorpusBuildConfig(StageConfig):
    input: str | None = None  # FineWeb2-schema parquet/jsonl file or dir, local or any fsspec URL; None: dev input
    storage_options: dict[str, Any] = Field(default_factory=dict)  # fsspec options for an input URL (S3 endpoint...)
    classifier: str | None = None  # a train-classifier dir; None: the cached default fastText
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    tokenizer: str | None = "smollm2"  # for the token totals: a tokenizer.json, a dir, or "smollm2"
    dropped_samples_per_reason: int = Field(3, ge=0)


class CorpusBuildResult(StageResult):
    key_metric: ClassVar[str] = "kept"
    kept: int
    input_docs: int
    medical_survival: float | None = None
    seconds: float
    output: str
    stats: str | None = None  # stats.json (None for slurm: the finalize job writes it)
    slurm: str | None = None  # DIR/slurm: jobs.json with the submitted job ids (executor.kind: slurm)


@stage("corpus.build")
def run(config: CorpusBuildConfig, run_dir: Path) -> CorpusBuildResult:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    input_path = str(default_dev_input()) if config.input is None else config.input
    opts = config.storage_options
    input_format(input_path, opts)  # one clear error for a missing/unsupported input
    check_text_column(input_path, config.pipeline.text_key, opts)
    used: dict[str, str | float] = {}

    def classifier() -> tuple[str, float]:
        if not used:
            clf = config.classifier or str(cached_default_classifier())
            classifier_meta(clf)  # one clear line for a dir that is not a trained classifier
            threshold = config.pipeline.domain_threshold
            used.update(dir=clf, threshold=classifier_threshold(clf) if threshold is None else threshold)
        return str(used["dir"]), float(used["threshold"])

    if config.pipeline.needs_classifier():
        classifier()
    stages = heavy("chain").build_stages(input_path, run_dir, config.pipeline, classifier, opts)
    write_build_info(run_dir, input_path, config, used.get("threshold"), used.get("dir"))
    result = execute(stages, run_dir, config.executor, count_input_files(input_path, opts))
    if config.executor.kind == "slurm":
        return CorpusBuildResult(kept=0, input_docs=0, seconds=round(time.time() - t0, 2),
                                 output=str(run_dir / "output"), slurm=str(result))
    stats = finalize(run_dir, extra={"stage_seconds": result or {}}, t0=t0)
    medical = (stats.get("survival") or {}).get("per_class", {}).get("medical", {})
    return CorpusBuildResult(kept=stats["totals"]["docs"], input_docs=stats["input_docs"],
                             medical_survival=medical.get("rate"), seconds=stats["seconds"],
                             output=str(run_dir / "output"), stats=str(run_dir / "stats.json"))


def write_build_info(run_dir: Path, input_path: str, config: CorpusBuildConfig, threshold: float | None,
                     clf: str | None) -> None:
    """``DIR/build.json``: what :func:`finalize` needs to write the stats later (after Slurm jobs, too)."""
    atomic_write_json(run_dir / BUILD_INFO, {
        "input": input_path, "storage_options": config.storage_options, "classifier": clf,
        "domain_threshold": threshold, "tokenizer": config.tokenizer,
        "dropped_samples_per_reason": config.dropped_samples_per_reason})


def finalize(run_dir: Path, extra: dict | None = None, t0: float | None = None) -> dict:
    """Merge the per-task stats of every stage, write ``DIR/stats.json`` and ``DIR/funnel.png``; return the stats.

    The local and Ray paths call it when their stages end; on Slurm, a job submitted after the last stage runs it as
    ``finemed corpus finalize DIR`` once the last job is done (``--dependency=afterok``).
    """
    run_dir = Path(run_dir)
    info_file = run_dir / BUILD_INFO
    if not info_file.is_file():
        raise FinemedError(f"{run_dir}: no {BUILD_INFO}; finalize a dir written by `finemed corpus build`")
    info = read_json(info_file)
    t_stats = time.time()
    for name in STAGES:
        merge_task_stats(run_dir, name)
    if not (run_dir / "logs" / "final" / "stats.json").is_file():
        raise FinemedError(f"{run_dir}: the final stage left no stats (logs/final/stats); did its jobs finish?")
    check_read_docs(run_dir, info)
    stats = collect_stats(run_dir, info)
    stats["stage_seconds"] = {**(extra or {}).get("stage_seconds", {}), "stats": round(time.time() - t_stats, 2)}
    if t0 is not None:
        stats["seconds"] = round(time.time() - t0, 2)
    atomic_write_json(run_dir / "stats.json", stats)
    return stats


def check_read_docs(run_dir: Path, info: dict) -> None:
    """A build that read zero documents is an error naming the input and the skip counts (no stats.json)."""
    reader = (block_stats(run_dir, STAGES[0]) or [{"in": 0}])[0]
    if reader.get("in"):
        return
    skipped = reader.get("skipped") or {}
    counts = ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())) or "none (the input has no rows)"
    hint = "check that the files are FineWeb2-schema parquet/jsonl with a text column"
    if "missing_text" in skipped:
        columns = first_row_columns(info["input"], info.get("storage_options"))
        if columns is not None:
            hint = f"columns found: {', '.join(columns) or 'none'}; set pipeline.text_key to the text column"
    raise FinemedError(f"corpus build read zero documents from {info['input']} (skipped: {counts}); {hint}")


def collect_stats(run_dir: Path, info: dict) -> dict:
    blocks = []
    for name in STAGES:
        blocks += block_stats(run_dir, name)
    totals = output_totals(run_dir / "output", info["tokenizer"])
    kept_by_source = totals.pop("_by_source")
    reader = blocks[0] if blocks else {"in": 0}
    skipped = reader.get("skipped", {})
    stats = {"input": info["input"], "classifier": info["classifier"], "domain_threshold": info["domain_threshold"],
             "input_docs": reader["in"] + sum(skipped.values()), "input_skipped": skipped,
             "blocks": blocks, "totals": totals,
             "funnel": funnel(blocks) + [{"block": "written", "stage": "final", "in": totals["docs"], "dropped": 0,
                                          "out": totals["docs"], "kept": totals["docs"], "reasons": {}}]}
    decont = decont_counts(blocks)
    if decont is not None:
        stats["decontamination"] = decont
    if kept_by_source:
        for columns in (["source", "medical", "contaminated"], ["source", "medical"]):
            try:
                rows = list(read_rows(info["input"], columns=columns, storage_options=info.get("storage_options")))
            except Exception:  # noqa: BLE001 - survival is only for inputs with the dev columns
                continue
            stats["survival"] = source_survival(rows, kept_by_source)
            break
    stats["dropped_samples"] = dropped_samples(run_dir, info["dropped_samples_per_reason"])
    plot_funnel([(f["block"], f["kept"]) for f in stats["funnel"]], run_dir / "funnel.png")
    return stats


def format_funnel(stats: dict) -> str:
    lines = [f"input docs: {stats['input_docs']}  (skipped: {stats['input_skipped'] or 'none'})"]
    for b in stats["blocks"]:
        if b.get("reasons") or b["dropped"] or b.get("changed"):
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(b.get("reasons", {}).items(), key=lambda x: -x[1]))
            lines.append(f"  {b['stage']:>6} | {b['block']:<28} in={b['in']:<6} kept={b['kept']:<6} "
                         f"dropped={b['dropped']:<6} {reasons}")
            if b.get("changed"):
                lines.append(f"  {'':>6} | {'':<28} kept but changed by cuts: {b['changed']} ({b['cut_chars']} chars)")
            if b.get("rescued"):
                lines.append(f"  {'':>6} | {'':<28} rescued by domain-aware settings: {b['rescued']}")
    t = stats["totals"]
    tok = Path(t["tokenizer"] or "no tokenizer").parent.name
    lines.append(f"written: {t['docs']} docs, {t['words']} words, {t['tokens']} tokens ({tok})")
    surv = (stats.get("survival") or {}).get("per_class")
    if surv:
        lines.append("survival by class: "
                     + ", ".join(f"{k}={v['kept']}/{v['in']} ({v['rate']})" for k, v in surv.items()))
    return "\n".join(lines)


@planner("corpus.build")
def plan(config: CorpusBuildConfig, ctx) -> dict:
    """``finemed plan``: docs in, the pipeline's CPU-hours over the workers, MinHash memory, disk out and, with a
    transformer classifier from an earlier stage, its GPU scoring cost (corpus_plan)."""
    docs, how = docs_in(config.input, ctx)
    return build_cost(docs, how, earlier(ctx, config.classifier), config.executor.workers, ctx,
                      classifier_gpus=config.executor.classifier_gpus())

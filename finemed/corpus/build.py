"""Stage ``corpus.build`` (``finemed corpus build``): the whole FineMed-de chain on datatrove.

The chain is ``pipeline.steps`` (:mod:`finemed.corpus.pipeline`). Without ``classifier`` the default fastText
classifier is trained on the dev input (cached by its fingerprint), and only when a step needs it. Writes
``DIR/output/*.parquet`` (FineWeb2 schema + ``domain_score``/PII counts, input ``id`` kept),
``DIR/stats.json`` (funnel, reasons, totals, dropped samples) and ``DIR/funnel.png``; the runner writes
``metrics.json`` from the Result. Reruns skip finished tasks through datatrove's completion markers.
datatrove is imported only when a build runs (:func:`finemed.corpus.registry.heavy`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from finemed.artifacts import atomic_write_json
from finemed.config import StageConfig
from finemed.corpus.executors import ExecutorConfig, execute
from finemed.corpus.pipeline import PipelineConfig
from finemed.corpus.registry import heavy
from finemed.corpus.rows import count_input_files, input_format, read_rows
from finemed.corpus.sample_input import default_dev_input
from finemed.corpus.scorers import classifier_threshold
from finemed.corpus.stats import block_stats, dropped_samples, funnel, output_totals, plot_funnel, source_survival
from finemed.corpus.train_classifier import cached_default_classifier
from finemed.stages import StageResult, stage


class CorpusBuildConfig(StageConfig):
    input: str | None = None  # FineWeb2-schema parquet/jsonl file or dir (or hf://, s3://); None: the dev input
    classifier: str | None = None  # a train-classifier dir; None: the cached default fastText
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    tokenizer: str | None = "smollm2"  # for the token totals: a tokenizer.json, a dir, or "smollm2"
    dropped_samples_per_reason: int = 3


class CorpusBuildResult(StageResult):
    key_metric: ClassVar[str] = "kept"
    kept: int
    input_docs: int
    medical_survival: float | None = None
    seconds: float
    output: str
    stats: str | None = None  # stats.json (None for slurm: nothing ran yet)
    slurm: str | None = None  # the emitted sbatch scripts (executor.kind: slurm)


@stage("corpus.build")
def run(config: CorpusBuildConfig, run_dir: Path) -> CorpusBuildResult:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    input_path = str(default_dev_input()) if config.input is None else config.input
    input_format(input_path)  # one clear error for a missing/unsupported input
    used: dict[str, str | float] = {}

    def classifier() -> tuple[str, float]:
        if not used:
            clf = config.classifier or str(cached_default_classifier())
            threshold = config.pipeline.domain_threshold
            used.update(dir=clf, threshold=classifier_threshold(clf) if threshold is None else threshold)
        return str(used["dir"]), float(used["threshold"])

    if config.pipeline.needs_classifier():
        classifier()
    stages = heavy("chain").build_stages(input_path, run_dir, config.pipeline, classifier)
    result = execute(stages, run_dir, config.executor, count_input_files(input_path))
    if config.executor.kind == "slurm":
        return CorpusBuildResult(kept=0, input_docs=0, seconds=round(time.time() - t0, 2),
                                 output=str(run_dir / "output"), slurm=str(result))
    t_stats = time.time()
    stats = collect_stats(run_dir, input_path, config, used.get("threshold"), used.get("dir"))
    stats["stage_seconds"] = {**(result or {}), "stats": round(time.time() - t_stats, 2)}
    stats["seconds"] = round(time.time() - t0, 2)
    atomic_write_json(run_dir / "stats.json", stats)
    medical = (stats.get("survival") or {}).get("per_class", {}).get("medical", {})
    return CorpusBuildResult(kept=stats["totals"]["docs"], input_docs=stats["input_docs"],
                             medical_survival=medical.get("rate"), seconds=stats["seconds"],
                             output=str(run_dir / "output"), stats=str(run_dir / "stats.json"))


def collect_stats(run_dir: Path, input_path: str, config: CorpusBuildConfig, threshold: float | None,
                  clf: str | None) -> dict:
    blocks = []
    for name in ("filter", "minhash_buckets", "minhash_cluster", "final"):
        blocks += block_stats(run_dir, name)
    totals = output_totals(run_dir / "output", config.tokenizer)
    kept_by_source = totals.pop("_by_source")
    reader = blocks[0] if blocks else {"in": 0}
    skipped = reader.get("skipped", {})
    stats = {"input": input_path, "classifier": clf, "domain_threshold": threshold,
             "input_docs": reader["in"] + sum(skipped.values()), "input_skipped": skipped,
             "blocks": blocks, "totals": totals,
             "funnel": [{"block": n, "kept": k} for n, k in funnel(blocks)]
             + [{"block": "written", "kept": totals["docs"]}]}
    if kept_by_source:
        try:
            rows = list(read_rows(input_path, columns=["source", "medical"]))
            stats["survival"] = source_survival(rows, kept_by_source)
        except Exception:  # noqa: BLE001 - survival is only for inputs with the dev columns
            pass
    stats["dropped_samples"] = dropped_samples(run_dir, config.dropped_samples_per_reason)
    plot_funnel([(f["block"], f["kept"]) for f in stats["funnel"]], run_dir / "funnel.png")
    return stats


def format_funnel(stats: dict) -> str:
    lines = [f"input docs: {stats['input_docs']}  (skipped: {stats['input_skipped'] or 'none'})"]
    for b in stats["blocks"]:
        if b.get("reasons") or b["dropped"]:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(b.get("reasons", {}).items(), key=lambda x: -x[1]))
            lines.append(f"  {b['stage']:>6} | {b['block']:<28} in={b['in']:<6} kept={b['kept']:<6} "
                         f"dropped={b['dropped']:<6} {reasons}")
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

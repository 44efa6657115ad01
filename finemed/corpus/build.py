"""``finemed corpus build`` and the recipe stage ``corpus.build``: the whole FineMed-de chain.

Without ``classifier`` the default fastText classifier is trained on the dev input (cached by its
fingerprint). Writes ``DIR/output/*.parquet`` (FineWeb2 schema + ``domain_score``/PII counts, input
``id`` kept), ``DIR/stats.json`` (funnel, reasons, totals, dropped samples), ``DIR/funnel.png`` and
``DIR/metrics.json``. Reruns skip finished tasks through datatrove's completion markers.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, Field

from finemed.artifacts import atomic_write_json
from finemed.config import StageConfig
from finemed.corpus.executors import ExecutorConfig, execute
from finemed.corpus.pipeline import PipelineConfig, build_stages, count_input_files


class CorpusBuildConfig(StageConfig):
    input: str | None = None  # FineWeb2-schema parquet/jsonl file or dir (or hf://, s3://); None: the dev input
    classifier: str | None = None  # a train-classifier dir; None: the cached default fastText
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    tokenizer: str | None = "smollm2"  # for the token totals: a tokenizer.json, a dir, or "smollm2"
    dropped_samples_per_reason: int = 3


class CorpusBuildResult(BaseModel):
    kept: int
    input_docs: int
    medical_survival: float | None = None
    seconds: float
    output: str
    stats: str


def run(config: CorpusBuildConfig, run_dir: Path) -> CorpusBuildResult:
    from finemed.corpus.domain import classifier_threshold
    from finemed.corpus.readers import input_format

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if config.input is None:
        from finemed.corpus.sample_input import default_dev_input

        input_path = str(default_dev_input())
    else:
        input_path = config.input
    input_format(input_path)  # one clear error for a missing/unsupported input
    if config.classifier is None:
        from finemed.corpus.train_classifier import cached_default_classifier

        clf = str(cached_default_classifier())
    else:
        clf = config.classifier
    threshold = config.pipeline.domain_threshold
    if threshold is None:
        threshold = classifier_threshold(clf)
    stages = build_stages(input_path, run_dir, clf, threshold, config.pipeline)
    n_files = count_input_files(input_path)
    result = execute(stages, run_dir, config.executor, n_files)
    if config.executor.kind == "slurm":
        return CorpusBuildResult(kept=0, input_docs=0, seconds=round(time.time() - t0, 2),
                                 output=str(run_dir / "output"), stats=str(result))
    t_stats = time.time()
    stats = collect_stats(run_dir, input_path, config, threshold, clf)
    stats["stage_seconds"] = {**(result or {}), "stats": round(time.time() - t_stats, 2)}
    stats["seconds"] = round(time.time() - t0, 2)
    atomic_write_json(run_dir / "stats.json", stats)
    res = CorpusBuildResult(kept=stats["totals"]["docs"], input_docs=stats["input_docs"],
                            medical_survival=(stats.get("survival") or {}).get("per_class", {}).get("medical", {}).get("rate"),
                            seconds=stats["seconds"], output=str(run_dir / "output"), stats=str(run_dir / "stats.json"))
    atomic_write_json(run_dir / "metrics.json", res)
    return res


def collect_stats(run_dir: Path, input_path: str, config: CorpusBuildConfig, threshold: float, clf: str) -> dict:
    from finemed.corpus.readers import read_rows
    from finemed.corpus.stats import (block_stats, dropped_samples, funnel, output_totals, plot_funnel,
                                      source_survival)

    blocks = []
    for stage in ("filter", "minhash_buckets", "minhash_cluster", "final"):
        blocks += block_stats(run_dir, stage)
    totals = output_totals(run_dir / "output", config.tokenizer)
    kept_by_source = totals.pop("_by_source")
    reader = blocks[0] if blocks else {"in": 0}
    skipped = reader.get("skipped", {})
    stats = {"input": input_path, "classifier": clf, "domain_threshold": threshold,
             "input_docs": reader["in"] + sum(skipped.values()), "input_skipped": skipped,
             "blocks": blocks, "totals": totals,
             "funnel": [{"block": n, "kept": k} for n, k in funnel(blocks)] + [{"block": "written", "kept": totals["docs"]}]}
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
            lines.append(f"  {b['stage']:>6} | {b['block']:<28} in={b['in']:<6} kept={b['kept']:<6} dropped={b['dropped']:<6} {reasons}")
            if b.get("rescued"):
                lines.append(f"  {'':>6} | {'':<28} rescued by domain-aware settings: {b['rescued']}")
    t = stats["totals"]
    lines.append(f"written: {t['docs']} docs, {t['words']} words, {t['tokens']} tokens ({Path(t['tokenizer'] or 'no tokenizer').parent.name})")
    surv = (stats.get("survival") or {}).get("per_class")
    if surv:
        lines.append("survival by class: " + ", ".join(f"{k}={v['kept']}/{v['in']} ({v['rate']})" for k, v in surv.items()))
    return "\n".join(lines)

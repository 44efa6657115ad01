"""``finemed corpus ...``: one thin command per corpus stage (``-c/--set/--out/--force`` plus a few flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from finemed.core.artifacts import read_json
from finemed.corpus.build import finalize, format_funnel
from finemed.orchestrate.stage_cli import CONFIG, FORCE, OUT, SET, echo_json, run_command

app = typer.Typer(help="Build a domain corpus from FineWeb2-style shards (datatrove).", no_args_is_help=True)


@app.command("sample-input")
def sample_input(config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT,
                 force: bool = FORCE,
                 shards: Optional[int] = typer.Option(None, help="Number of parquet shards"),
                 seed: Optional[int] = typer.Option(None, help="Shuffle seed")):
    """Write the FineWeb2-schema dev input mixed from the bundled texts (OUT/data/*.parquet)."""
    res = run_command("corpus.sample_input", config, set_, out, flags={"shards": shards, "seed": seed}, force=force)
    echo_json(res)


@app.command("build")
def build(config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE,
          input: Optional[str] = typer.Option(None, "--input", help="FineWeb2-schema parquet/jsonl file or dir"),
          classifier: Optional[str] = typer.Option(None, "--classifier", help="train-classifier dir"),
          executor: Optional[str] = typer.Option(None, "--executor", help="local | ray | slurm (submits via sbatch)"),
          workers: Optional[int] = typer.Option(None, "--workers", help="Parallel workers")):
    """Run the chain (pipeline.steps: LID, domain score, quality, MinHash, PII), FineWeb2 parquet + stats."""
    res = run_command("corpus.build", config, set_, out, force=force, flags={
        "input": input, "classifier": classifier, "executor.kind": executor, "executor.workers": workers})
    if res.get("slurm"):
        typer.echo(f"slurm jobs submitted (ids in {res['slurm']}/jobs.json); the finalize job writes stats.json")
        return
    typer.echo(format_funnel(read_json(out / "stats.json")))
    typer.echo(f"kept={res['kept']} output={res['output']}")


@app.command("finalize")
def finalize_cmd(out: Path = typer.Argument(..., help="A corpus build dir whose stage jobs have finished")):
    """Merge the per-task stats of a finished build (e.g. after its Slurm jobs): stats.json + funnel.png."""
    stats = finalize(out)
    typer.echo(format_funnel(stats))
    typer.echo(f"stats written to {out / 'stats.json'}")


@app.command("train-classifier")
def train_classifier(config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT,
                     force: bool = FORCE,
                     input: Optional[str] = typer.Option(None, "--input", help="Labelled parquet/jsonl"),
                     kind: Optional[str] = typer.Option(None, help="fasttext | transformer"),
                     labels: Optional[str] = typer.Option(None, help="annotate labels.jsonl (id, label)"),
                     target_precision: Optional[float] = typer.Option(None, help="Tune the threshold for this"),
                     base_model: Optional[str] = typer.Option(None, help="transformer base model dir or hub id")):
    """Train the domain classifier; tune its threshold on a held-out split; P/R/F1 + PR curve."""
    res = run_command("corpus.train_classifier", config, set_, out, force=force, flags={
        "input": input, "kind": kind, "labels": labels, "target_precision": target_precision,
        "base_model": base_model})
    typer.echo(f"{res['kind']}: threshold={res['threshold']:.4f} test: {res['test']}")


@app.command("cascade")
def cascade_cmd(config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT,
                force: bool = FORCE,
                fasttext: Optional[str] = typer.Option(None, "--fasttext", help="fastText classifier dir"),
                transformer: Optional[str] = typer.Option(None, "--transformer", help="transformer classifier dir"),
                input: Optional[str] = typer.Option(None, "--input", help="Labelled input"),
                prefilter_recall: Optional[float] = typer.Option(None, help="Recall the prefilter must keep")):
    """Build a fastText→transformer cascade; report the share reaching the transformer and relative recall."""
    res = run_command("corpus.cascade", config, set_, out, force=force, flags={
        "fasttext": fasttext, "transformer": transformer, "input": input, "prefilter_recall": prefilter_recall})
    echo_json({k: res[k] for k in ("share_to_transformer", "recall_relative_to_transformer", "test_cascade",
                                   "test_transformer_only")})


@app.command("quality-report")
def quality_report(config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT,
                   force: bool = FORCE,
                   input: Optional[str] = typer.Option(None, "--input", help="Dev-input-style parquet dir"),
                   classifier: Optional[str] = typer.Option(None, "--classifier", help="train-classifier dir")):
    """Per filter and setting, the survival of medical positives and negatives, with dropped examples."""
    res = run_command("corpus.quality_report", config, set_, out, force=force,
                      flags={"input": input, "classifier": classifier})
    for setting, filters in res["survival"].items():
        for name, v in filters.items():
            rates = "  ".join(f"{c} {r:.3f}" for c, r in v.items())
            typer.echo(f"{setting:<18} {name:<9} {rates}")


@app.command("annotate")
def annotate_cmd(config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT,
                 force: bool = FORCE,
                 input: Optional[str] = typer.Option(None, "--input", help="Parquet/jsonl to sample"),
                 llm: Optional[str] = typer.Option(None, "--llm", help='"http://HOST:PORT/v1#MODEL" or "local:PATH"'),
                 sample: Optional[int] = typer.Option(None, help="Docs to label"),
                 template: Optional[str] = typer.Option(None, help="de | en | a custom template with {text}"),
                 label_field: Optional[str] = typer.Option(None, help="an input column with gold labels"),
                 human_labels: Optional[str] = typer.Option(None, help="jsonl with id,label for judge P/R/F1")):
    """Label sampled docs medical/not with a zero-shot LLM (cached verdicts); judge P/R/F1 with CI."""
    res = run_command("corpus.annotate", config, set_, out, force=force, flags={
        "input": input, "llm": llm, "sample": sample, "template": template, "label_field": label_field,
        "human_labels": human_labels})
    echo_json(res)


@app.command("pii-eval")
def pii_eval(config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT,
             force: bool = FORCE,
             input: Optional[str] = typer.Option(None, "--input", help="GraSCCo-style jsonl (default: bundled)")):
    """Score the German de-identifier on GraSCCo PHI spans (span-level P/R per label)."""
    res = run_command("corpus.pii_eval", config, set_, out, force=force, flags={"input": input})
    echo_json(res)

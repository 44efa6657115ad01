"""``finemed corpus ...``: thin commands over the corpus stage (parse, load config, call)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Build a domain corpus from FineWeb2-style shards (datatrove).", no_args_is_help=True)


@app.command("sample-input")
def sample_input(out: Path = typer.Option(..., "--out", help="Output dir for the dev parquet shards"),
                 shards: int = typer.Option(4, help="Number of parquet shards"),
                 seed: int = typer.Option(0, help="Shuffle seed")):
    """Write the FineWeb2-schema dev input mixed from the bundled texts."""
    from finemed.corpus.sample_input import write_sample_input

    typer.echo(json.dumps(write_sample_input(out, shards=shards, seed=seed)))


@app.command("build")
def build(input: Optional[str] = typer.Option(None, "--input", help="FineWeb2-schema parquet/jsonl file or dir (default: dev input)"),
          out: Path = typer.Option(..., "--out", help="Output dir"),
          config: Optional[Path] = typer.Option(None, "--config", help="YAML with CorpusBuildConfig keys"),
          classifier: Optional[str] = typer.Option(None, "--classifier", help="train-classifier dir (default: cached fastText)"),
          executor: Optional[str] = typer.Option(None, "--executor", help="local | ray | slurm (emit scripts)"),
          workers: Optional[int] = typer.Option(None, "--workers", help="Parallel workers"),
          set_: Optional[list[str]] = typer.Option(None, "--set", help="Override: key.sub=value")):
    """Run the whole chain: LID, domain score, quality, MinHash, PII, FineWeb2 parquet + stats."""
    from finemed.config import load_config
    from finemed.corpus.build import CorpusBuildConfig, format_funnel, run

    overrides = list(set_ or [])
    for key, val in (("input", input), ("classifier", classifier), ("executor.kind", executor), ("executor.workers", workers)):
        if val is not None:
            overrides.append(f"{key}={val}")
    cfg = load_config(CorpusBuildConfig, config, overrides)
    res = run(cfg, out)
    if cfg.executor.kind == "slurm":
        typer.echo(f"slurm scripts written to {res.stats}; submit with {res.stats}/submit.sh")
        return
    from finemed.artifacts import read_json

    typer.echo(format_funnel(read_json(out / "stats.json")))
    typer.echo(f"kept={res.kept} output={res.output}")


@app.command("train-classifier")
def train_classifier(input: Optional[str] = typer.Option(None, "--input", help="Labelled parquet/jsonl (default: dev input)"),
                     out: Path = typer.Option(..., "--out"),
                     kind: str = typer.Option("fasttext", help="fasttext | transformer"),
                     labels: Optional[str] = typer.Option(None, help="annotate labels.jsonl (id, label)"),
                     target_precision: float = typer.Option(0.95, help="Tune the threshold for this precision"),
                     base_model: Optional[str] = typer.Option(None, help="transformer base model (default xlm-roberta-base)"),
                     set_: Optional[list[str]] = typer.Option(None, "--set", help="Override: key=value")):
    """Train the domain classifier; tune its threshold on a held-out split; P/R/F1 + PR curve."""
    from finemed.config import load_config
    from finemed.corpus.sample_input import default_dev_input
    from finemed.corpus.train_classifier import TrainClassifierConfig
    from finemed.corpus.train_classifier import train_classifier as train

    base = {"input": input or str(default_dev_input()), "kind": kind, "labels": labels, "target_precision": target_precision}
    if base_model:
        base["base_model"] = base_model
    cfg = load_config(TrainClassifierConfig, None, set_, base=base)
    meta = train(cfg, out)
    typer.echo(f"threshold={meta['threshold']:.4f} test: " + json.dumps(meta["test"]))


@app.command("pii-eval")
def pii_eval(input: Optional[Path] = typer.Option(None, "--input", help="GraSCCo jsonl (default: bundled)"),
             out: Path = typer.Option(..., "--out")):
    """Score the German de-identifier on GraSCCo PHI spans; writes DIR/pii_eval.json."""
    from finemed.corpus.pii_eval import run_pii_eval

    res = run_pii_eval(input, out)
    typer.echo(f"{'label':<24}{'precision':>10}{'recall':>8}{'support':>9}")
    for label, v in res["per_label"].items():
        p = "-" if v["precision"] is None else f"{v['precision']:.3f}"
        r = "-" if v["recall"] is None else f"{v['recall']:.3f}"
        typer.echo(f"{label:<24}{p:>10}{r:>8}{v['support']:>9}")
    typer.echo(f"micro: {res['micro']}  groups: {res['groups']}  leaks: {res['leaks']}")


@app.command("quality-report")
def quality_report(input: Optional[str] = typer.Option(None, "--input", help="Dev-input parquet dir (default: dev input)"),
                   out: Path = typer.Option(..., "--out"),
                   classifier: Optional[str] = typer.Option(None, "--classifier")):
    """Per filter and setting, the survival of medical positives and negatives, with dropped examples."""
    from finemed.corpus.quality_report import run_quality_report

    res = run_quality_report(input, out, classifier)
    for setting, filters in res["survival"].items():
        for name, v in filters.items():
            typer.echo(f"{setting:<13} {name:<9} medical {v['medical']:.3f}  german_other {v['german_other']:.3f}")


@app.command("annotate")
def annotate_cmd(input: Optional[str] = typer.Option(None, "--input", help="Parquet/jsonl to sample (default: dev input)"),
                 llm: str = typer.Option(..., "--llm", help='"http://127.0.0.1:PORT/v1#MODEL" or "local:PATH"'),
                 out: Path = typer.Option(..., "--out"),
                 sample: int = typer.Option(200, help="Docs to label"),
                 template: str = typer.Option("de", help="de | en | a custom template with {text}"),
                 human_labels: Optional[str] = typer.Option(None, help="jsonl with id,label for judge P/R/F1"),
                 label_field: Optional[str] = typer.Option(None, help="or an input column with gold labels")):
    """Label sampled docs medical/not with a zero-shot LLM (cached verdicts); judge P/R/F1 with CI."""
    from finemed.corpus.annotate import AnnotateConfig, annotate
    from finemed.corpus.sample_input import default_dev_input

    cfg = AnnotateConfig(input=input or str(default_dev_input()), llm=llm, sample=sample, template=template,
                         human_labels=human_labels, label_field=label_field)
    typer.echo(json.dumps(annotate(cfg, out), indent=1))


@app.command("cascade")
def cascade_cmd(fasttext: Path = typer.Option(..., "--fasttext", help="fastText classifier dir"),
                transformer: Path = typer.Option(..., "--transformer", help="transformer classifier dir"),
                out: Path = typer.Option(..., "--out"),
                input: Optional[str] = typer.Option(None, "--input", help="Labelled input (default: dev input)"),
                prefilter_recall: float = typer.Option(0.98, help="Recall the fastText prefilter must keep")):
    """Build a fastText→transformer cascade; report the share reaching the transformer and relative recall."""
    from finemed.corpus.cascade import build_cascade
    from finemed.corpus.sample_input import default_dev_input

    meta = build_cascade(input or str(default_dev_input()), fasttext, transformer, out, prefilter_recall)
    typer.echo(json.dumps({k: meta[k] for k in ("share_to_transformer", "recall_relative_to_transformer",
                                                 "test_cascade", "test_transformer_only")}, indent=1))

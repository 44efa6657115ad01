"""``finemed tokenizer train|eval|cost|compare|correlate``: parse, load config, call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


def _split(values: Optional[list[str]]) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for the tokenizers (one sub-folder each)"),
    config: Optional[Path] = typer.Option(None, "--config", help="Sweep YAML (algorithms, libraries, vocab_sizes, corpora)"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config key: vocab_sizes=[2000]"),
    source: Optional[list[str]] = typer.Option(None, "--source", help="Without --config: LANG=SOURCE (repeatable), "
                                               "e.g. deu_Latn=fortunes_de or eng_Latn=corpus/out.parquet"),
    vocab_size: Optional[list[str]] = typer.Option(None, "--vocab-size", help="Without --config: sizes, e.g. 2000,8000"),
    algorithm: str = typer.Option("bpe,unigram", help="Without --config: bpe, unigram or both"),
    library: str = typer.Option("hf,sp", help="Without --config: hf, sp or both"),
    max_bytes: int = typer.Option(5_000_000, "--max-bytes", help="Without --config: byte budget per language"),
    name: str = typer.Option("CUSTOM", "--name", help="Without --config: the corpus name prefix"),
):
    """Train a sweep of BPE/Unigram × HF/SentencePiece tokenizers, each saved HF-loadable."""
    from finemed.config import FinemedError, load_config
    from finemed.tokenizer.sweep import SweepConfig, run_sweep

    if config is not None:
        cfg = load_config(SweepConfig, config, set_)
    else:
        langs: dict[str, dict] = {}
        for item in source or []:
            lang, sep, src = item.partition("=")
            if not sep or not src:
                raise FinemedError(f"--source {item!r}: expected LANG=SOURCE, e.g. deu_Latn=fortunes_de")
            langs.setdefault(lang, {"sources": []})["sources"].append(src)
        if not langs:
            raise FinemedError("give --config SWEEP.yaml or at least one --source LANG=SOURCE")
        raw = {"algorithms": _split([algorithm]), "libraries": _split([library]),
               "vocab_sizes": [int(v) for v in _split(vocab_size) or ["8000"]],
               "corpora": [{"name": name, "total_bytes": max_bytes * len(langs), "languages": langs}]}
        cfg = load_config(SweepConfig, None, set_, base=raw)
    result = run_sweep(cfg, out)
    typer.echo(json.dumps([t.model_dump() for t in result.tokenizers], indent=1))


@app.command("eval")
def eval_cmd(
    tokenizer: list[str] = typer.Option(..., "--tokenizer", help="HF dir, tokenizer.json, .model, .tiktoken or a "
                                        "bundled name (gpt2, qwen2.5, llama-2, cl100k_base, smollm2, …); repeatable"),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json, metrics.csv, details.json, parity.png"),
    parallel: str = typer.Option("sib200", "--parallel", help="SIB-200-style folder, 'sib200', 'xquad', a TSV, "
                                 "or a folder of LANG.txt files"),
    langs: str = typer.Option("eng_Latn,deu_Latn", "--langs", help="FLORES-200 codes, comma-separated"),
    words: str = typer.Option("whitespace", "--words", help="Word pre-segmentation: whitespace | punct"),
    splits: str = typer.Option("train,dev,test", "--splits", help="SIB-200 splits to use"),
    ref_lang: str = typer.Option("eng_Latn", "--ref-lang", help="Parity reference language"),
):
    """Fertility, parity, continued words, bytes/token and vocab use on parallel sentences."""
    from finemed.tokenizer.evaluate import run_eval

    metrics, _ = run_eval(tokenizer, parallel=parallel, langs=_split([langs]),
                          out_dir=out, words=words, splits=tuple(_split([splits])), ref_lang=ref_lang)
    for name, per in metrics.items():
        cells = "  ".join(f"{lang} fert {m['fertility']:.3f} par {m['parity_sum'] or 0:.3f}" for lang, m in per.items())
        typer.echo(f"{name:24s} {cells}")
    typer.echo(f"wrote {out / 'metrics.json'}")


@app.command("cost")
def cost_cmd(
    metrics: Path = typer.Option(..., "--metrics", help="An eval folder (metrics.json + details.json) or metrics.json"),
    mix: str = typer.Option(..., "--mix", help="Language weights (shares of words): eng_Latn=0.2,deu_Latn=0.8"),
    model: str = typer.Option("2.6b", "--model", help="Preset: 2.6b | 7b | smollm2 | custom"),
    layers: Optional[int] = typer.Option(None, "--layers"),
    hidden: Optional[int] = typer.Option(None, "--hidden"),
    seq_len: Optional[int] = typer.Option(None, "--seq-len"),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Compare against this tokenizer (default: cheapest)"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Print this one's extra cost"),
    no_recompute: bool = typer.Option(False, "--no-recompute", help="72 instead of 96: no activation recomputation"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write cost.json, cost.md and cost.png here"),
):
    """Training FLOPs per word (fertility × Megatron FLOPs per token) and the extra cost of each tokenizer."""
    from finemed.artifacts import atomic_write_json, atomic_write_text
    from finemed.config import FinemedError
    from finemed.tokenizer.cost import cost_table, parse_mix, table_markdown
    from finemed.tokenizer.stage import CostSpec

    folder = metrics if metrics.is_dir() else metrics.parent
    mpath, dpath = folder / "metrics.json", folder / "details.json"
    for p in (mpath, dpath):
        if not p.is_file():
            raise FinemedError(f"{p} is missing; run `finemed tokenizer eval --out {folder}` first")
    m, d = json.loads(mpath.read_text()), json.loads(dpath.read_text())
    spec = CostSpec(mix=parse_mix(mix), model=model, layers=layers, hidden=hidden, seq_len=seq_len,
                    baseline=baseline, tokenizer=tokenizer, recompute=not no_recompute)
    shape = spec.shape()
    rows = cost_table(m, {n: v["vocab_size"] for n, v in d.items()}, spec.mix, shape, baseline=baseline,
                      recompute=spec.recompute)
    base = baseline or rows[0].tokenizer
    md = table_markdown(rows, base)
    typer.echo(f"model {shape.name}: {shape.layers} layers, hidden {shape.hidden}, seq {shape.seq_len}; mix "
               + ", ".join(f"{k} {v:.0%}" for k, v in spec.mix.items()))
    typer.echo(md)
    if tokenizer:
        row = next((r for r in rows if r.tokenizer == tokenizer), None)
        if row is None:
            raise FinemedError(f"--tokenizer {tokenizer!r} not in {mpath}; have {', '.join(r.tokenizer for r in rows)}")
        typer.echo(f"extra training FLOPs of {tokenizer} over {base}: {100 * row.extra_vs_baseline:+.1f}%")
    if out:
        from finemed.tokenizer.plots import plot_cost_table

        atomic_write_json(out / "cost.json", {"mix": spec.mix, "model": shape.model_dump(), "baseline": base,
                                              "rows": [r.model_dump() for r in rows]})
        atomic_write_text(out / "cost.md", md)
        plot_cost_table(md, out / "cost.png", f"{shape.name} on {mix}")


@app.command("compare")
def compare_cmd(
    config: Path = typer.Option(..., "--config", help="A tokenizer.compare stage config YAML (see recipes/tokenizer-study.yaml)"),
    out: Path = typer.Option(..., "--out", help="Run folder"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config key"),
):
    """Sweep + eval + cost + plots in one go (the recipe stage, standalone)."""
    from finemed.config import load_config
    from finemed.tokenizer.stage import TokenizerStageConfig, run

    result = run(load_config(TokenizerStageConfig, config, set_), out)
    typer.echo(f"extra cost: {result.extra_cost}")
    typer.echo(f"wrote {out}")


@app.command("correlate")
def correlate_cmd(
    metrics: Path = typer.Option(..., "--metrics", help="metrics.json (or its folder)"),
    scores: Path = typer.Option(..., "--scores", help="CSV: a 'tokenizer' column and score columns"),
    metric: str = typer.Option("fertility", "--metric"),
    lang: str = typer.Option("deu_Latn", "--lang"),
):
    """Spearman and Pearson (with n and p) between an intrinsic metric and downstream scores."""
    from finemed.config import FinemedError
    from finemed.tokenizer.correlate import correlate, read_scores

    path = metrics / "metrics.json" if metrics.is_dir() else metrics
    if not path.is_file():
        raise FinemedError(f"{path} is missing; run `finemed tokenizer eval` first")
    for c in correlate(json.loads(path.read_text()), read_scores(scores), metric=metric, lang=lang):
        typer.echo(f"{c.metric}[{c.lang}] vs {c.score}: n={c.n} spearman={c.spearman:.3f} (p={c.spearman_p:.3g}) "
                   f"pearson={c.pearson:.3f} (p={c.pearson_p:.3g})")

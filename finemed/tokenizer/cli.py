"""``finemed tokenizer train|eval|cost|compare|correlate``: thin wrappers over the tokenizer stages.

Every artifact command takes ``-c CONFIG.yaml``, ``--set key=value``, ``--out DIR``, ``--force`` and a few named
flags that map onto config keys; the defaults live in the stage Configs only. ``correlate`` makes no artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from finemed.core.config import FinemedError
from finemed.orchestrate.stage_cli import CONFIG, FORCE, OUT, SET, run_command
from finemed.tokenizer.correlate import correlate, read_scores
from finemed.tokenizer.cost import parse_mix
from finemed.tokenizer.evaluate import eval_folder, read_eval

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


def _split(values: Optional[list[str] | str]) -> list[str] | None:
    """Comma-separated and/or repeated values → a list; None when not given."""
    if values is None:
        return None
    items = [values] if isinstance(values, str) else values
    return [v.strip() for item in items for v in item.split(",") if v.strip()] or None


def _corpus(source: Optional[list[str]], name: Optional[str], max_bytes: Optional[int]) -> list[dict] | None:
    """``--source LANG=SOURCE`` (repeatable) → one corpus of the sweep config; None when not given."""
    if not source:
        if name is not None or max_bytes is not None:
            raise FinemedError("--name and --max-bytes describe the --source corpus; give --source LANG=SOURCE too")
        return None
    langs: dict[str, dict] = {}
    for item in source:
        lang, sep, src = item.partition("=")
        if not sep or not lang or not src:
            raise FinemedError(f"--source {item!r}: expected LANG=SOURCE, e.g. deu_Latn=builtin:fortunes_de")
        langs.setdefault(lang, {"sources": []})["sources"].append(src)
    corpus = {"languages": langs, "name": name, "bytes_per_language": max_bytes}
    return [{k: v for k, v in corpus.items() if v is not None}]


@app.command("train")
def train_cmd(
    config: Optional[Path] = CONFIG,
    set_: Optional[list[str]] = SET,
    out: Path = OUT,
    force: bool = FORCE,
    source: Optional[list[str]] = typer.Option(None, "--source", help="LANG=SOURCE (repeatable; a finemed text "
                                               "source): one corpus, e.g. deu_Latn=builtin:fortunes_de"),
    vocab_size: Optional[list[str]] = typer.Option(None, "--vocab-size", help="vocab_sizes, e.g. 2000,8000"),
    algorithm: Optional[str] = typer.Option(None, "--algorithm", help="algorithms: bpe, unigram or both"),
    library: Optional[str] = typer.Option(None, "--library", help="libraries: hf, sp or both"),
    max_bytes: Optional[int] = typer.Option(None, "--max-bytes", help="Byte budget per language of --source"),
    name: Optional[str] = typer.Option(None, "--name", help="Name prefix of the --source corpus"),
):
    """Train a sweep of BPE/Unigram × HF/SentencePiece tokenizers, each saved HF-loadable under OUT."""
    sizes = _split(vocab_size)
    res = run_command("tokenizer.train", config, set_, out, flags={
        "corpora": _corpus(source, name, max_bytes), "vocab_sizes": [int(v) for v in sizes] if sizes else None,
        "algorithms": _split(algorithm), "libraries": _split(library)}, force=force)
    for t in res["tokenizers"]:
        typer.echo(f"{t['name']:24s} vocab {t['vocab_size']:>7}  {t['path']}")
    for s in res["skipped"]:
        typer.echo(f"{s['name']:24s} skipped: {s['reason']}")


@app.command("eval")
def eval_cmd(
    config: Optional[Path] = CONFIG,
    set_: Optional[list[str]] = SET,
    out: Path = OUT,
    force: bool = FORCE,
    tokenizer: Optional[list[str]] = typer.Option(None, "--tokenizer", help="HF dir, tokenizer.json, .model, "
                                                  ".tiktoken or a bundled name (gpt2, smollm2, …); repeatable"),
    parallel: Optional[str] = typer.Option(None, "--parallel", help="sib200, xquad, a SIB-200-style folder, a TSV "
                                           "or a folder of LANG.txt files"),
    langs: Optional[str] = typer.Option(None, "--langs", help="FLORES-200 codes, comma-separated"),
    words: Optional[str] = typer.Option(None, "--words", help="Word pre-segmentation: whitespace | punct"),
    splits: Optional[str] = typer.Option(None, "--splits", help="SIB-200 splits, comma-separated"),
    ref_lang: Optional[str] = typer.Option(None, "--ref-lang", help="Parity reference language"),
):
    """Fertility, parity, continued words, bytes/token and vocab use on parallel sentences."""
    res = run_command("tokenizer.eval", config, set_, out, flags={
        "tokenizers": tokenizer or None, "parallel": parallel, "langs": _split(langs), "words": words,
        "splits": _split(splits), "ref_lang": ref_lang}, force=force)
    for name, per in res["fertility"].items():
        cells = "  ".join(f"{lang} fert {f:.3f} par {res['parity'][name][lang] or 0:.3f}" for lang, f in per.items())
        typer.echo(f"{name:24s} {cells}")
    typer.echo(f"wrote {res['table']}")


@app.command("cost")
def cost_cmd(
    config: Optional[Path] = CONFIG,
    set_: Optional[list[str]] = SET,
    out: Path = OUT,
    force: bool = FORCE,
    metrics: Optional[Path] = typer.Option(None, "--metrics", help="An eval run dir (tokenizer_metrics.json + "
                                           "details.json) or its tokenizer_metrics.json"),
    mix: Optional[str] = typer.Option(None, "--mix", help="Language weights (shares of words): "
                                      "eng_Latn=0.2,deu_Latn=0.8"),
    model: Optional[str] = typer.Option(None, "--model", help="Preset: 2.6b | 7b | smollm2 | custom"),
    layers: Optional[int] = typer.Option(None, "--layers"),
    hidden: Optional[int] = typer.Option(None, "--hidden"),
    seq_len: Optional[int] = typer.Option(None, "--seq-len"),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Compare against this tokenizer "
                                           "(default: cheapest)"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Report this one's extra cost"),
    recompute: Optional[bool] = typer.Option(None, "--recompute/--no-recompute",
                                             help="Activation recomputation: 96 (default) or 72 FLOPs factor"),
):
    """Training FLOPs per word (fertility × Megatron FLOPs per token) and the extra cost of each tokenizer."""

    if metrics is not None and eval_folder(metrics).resolve() == out.resolve():
        raise FinemedError(f"--out {out} is the eval run dir itself; write the cost to its own folder")
    res = run_command("tokenizer.cost", config, set_, out, flags={
        "metrics": metrics, "mix": parse_mix(mix) if mix is not None else None, "model": model, "layers": layers,
        "hidden": hidden, "seq_len": seq_len, "baseline": baseline, "tokenizer": tokenizer,
        "recompute": recompute}, force=force)
    m = res["model"]
    typer.echo(f"model {m['name']}: {m['layers']} layers, hidden {m['hidden']}, seq {m['seq_len']}; mix "
               + ", ".join(f"{k} {v:.0%}" for k, v in res["mix"].items()))
    typer.echo(Path(res["table"]).read_text(encoding="utf-8"))
    if res["extra_cost"]:
        typer.echo(f"extra training FLOPs: {res['extra_cost']}")


@app.command("compare")
def compare_cmd(
    config: Optional[Path] = CONFIG,
    set_: Optional[list[str]] = SET,
    out: Path = OUT,
    force: bool = FORCE,
    tokenizer: Optional[list[str]] = typer.Option(None, "--tokenizer", help="tokenizers to evaluate beside the "
                                                  "sweep (repeatable)"),
    langs: Optional[str] = typer.Option(None, "--langs", help="FLORES-200 codes, comma-separated"),
):
    """Sweep + eval + cost + plots in one go (the recipe stage, standalone; see recipes/tokenizer-study-mini.yaml)."""
    res = run_command("tokenizer.compare", config, set_, out, flags={
        "tokenizers": tokenizer or None, "langs": _split(langs)}, force=force)
    typer.echo(f"extra cost: {res['extra_cost']}")
    typer.echo(f"wrote {out}")


@app.command("correlate")
def correlate_cmd(
    metrics: Path = typer.Option(..., "--metrics", help="An eval or compare run dir, or its tokenizer_metrics.json"),
    scores: Path = typer.Option(..., "--scores", help="CSV: a 'tokenizer' column and score columns"),
    metric: str = typer.Option("fertility", "--metric"),
    lang: str = typer.Option("deu_Latn", "--lang"),
):
    """Spearman and Pearson (with n and p) between an intrinsic metric and downstream scores."""

    table, _ = read_eval(metrics, need_details=False)
    for c in correlate(table, read_scores(scores), metric=metric, lang=lang):
        typer.echo(f"{c.metric}[{c.lang}] vs {c.score}: n={c.n} spearman={c.spearman:.3f} (p={c.spearman_p:.3g}) "
                   f"pearson={c.pearson:.3f} (p={c.pearson_p:.3g})")

"""The ``tokenizer.eval`` stage: tokenizers on parallel data → ``tokenizer_metrics.json``/``.csv``, ``details.json``.

``tokenizer_metrics.json`` (the eval table; the run's ``metrics.json`` is the stage Result) is exactly
``{tokenizer_name: {lang: {"fertility", "parity", "parity_sum", "continued_words", "bytes_per_token"}}}``.
``details.json`` adds, per tokenizer, its kind, source, vocab size, and per language the raw counts (sentences,
tokens, words, bytes), vocab use and skipped parity pairs; the CSV has one row per (tokenizer, language).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import ClassVar, Optional, Sequence

from pydantic import Field, field_validator

from finemed.core.artifacts import atomic_write_json, atomic_write_text
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import progress
from finemed.core.stages import StageResult, planner, stage
from finemed.data.tokenizers import AnyTokenizer, load_any_tokenizer
from finemed.tokenizer.metrics import METRIC_KEYS, check_words, count_language, language_metrics, parity
from finemed.tokenizer.parallel import SIB_SPLITS, ParallelSet, load_parallel
from finemed.tokenizer.plots import plot_fertility_vs_vocab, plot_parity
from finemed.tokenizer.tokenizer_plan import eval_cost

REF_LANG = "eng_Latn"
METRICS_FILE = "tokenizer_metrics.json"  # the eval table (metrics.json is the stage Result)
METRICS_CSV = "tokenizer_metrics.csv"
DETAILS_FILE = "details.json"


def load_tokenizers(specs: Sequence[str]) -> list[AnyTokenizer]:
    """Load each spec; names are made unique (``gpt2``, ``gpt2#2``) so no result overwrites another."""
    if not specs:
        raise FinemedError("no tokenizer given; pass --tokenizer PATH_OR_NAME (repeatable)")
    toks, seen = [], {}
    for spec in specs:
        tok = load_any_tokenizer(spec)
        seen[tok.name] = seen.get(tok.name, 0) + 1
        if seen[tok.name] > 1:
            tok.name = f"{tok.name}#{seen[tok.name]}"
        toks.append(tok)
    return toks


def load_eval_data(parallel: str | Path | None, langs: Sequence[str], splits: Sequence[str] = SIB_SPLITS,
                   ref_lang: str = REF_LANG) -> tuple[ParallelSet, bool]:
    """The parallel set for ``langs`` plus the reference language when the data has it."""
    langs = list(langs)
    with_ref = langs if ref_lang in langs else langs + [ref_lang]
    try:
        return load_parallel(parallel, with_ref, tuple(splits)), True
    except FinemedError as err:
        if ref_lang in langs or "unknown language code" not in str(err) or repr(ref_lang) not in str(err):
            raise
    return load_parallel(parallel, langs, tuple(splits)), False


def evaluate(tokenizers: Sequence[AnyTokenizer], data: ParallelSet, langs: Sequence[str], *,
             words: str = "whitespace", ref_lang: str = REF_LANG) -> tuple[dict, dict]:
    """``(metrics, details)`` for every tokenizer × language (see the module docstring)."""
    check_words(words)
    metrics, details = {}, {}
    for tok in progress(tokenizers, "evaluating tokenizers"):
        counts = {lang: count_language(tok, data.texts[lang], words) for lang in data.texts}
        ref = counts.get(ref_lang)
        used_all = set().union(*(c.ids for c in counts.values()))
        metrics[tok.name] = {lang: language_metrics(counts[lang], ref) for lang in langs}
        details[tok.name] = {
            "kind": tok.kind, "source": tok.source, "vocab_size": tok.vocab_size, "words": words,
            "reference": ref_lang if ref is not None else None, "parallel": data.name,
            "vocab_use": len(used_all) / tok.vocab_size,
            "langs": {lang: {
                "sentences": len(counts[lang].tokens), "tokens": counts[lang].total_tokens,
                "words": counts[lang].words, "bytes": counts[lang].bytes, "continued": counts[lang].continued,
                "vocab_use": len(counts[lang].ids) / tok.vocab_size,
                "parity_skipped": parity(counts[lang], ref)[2] if ref is not None else None,
            } for lang in langs},
        }
    return metrics, details


def csv_text(metrics: dict, details: dict) -> str:
    buf = io.StringIO()
    cols = ["tokenizer", "lang", *METRIC_KEYS, "vocab_use", "vocab_size", "sentences", "tokens", "words", "bytes"]
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for name, per_lang in metrics.items():
        for lang, m in per_lang.items():
            d = details[name]["langs"][lang]
            writer.writerow({"tokenizer": name, "lang": lang, **{k: _fmt(m[k]) for k in METRIC_KEYS},
                             "vocab_use": _fmt(d["vocab_use"]), "vocab_size": details[name]["vocab_size"],
                             **{k: d[k] for k in ("sentences", "tokens", "words", "bytes")}})
    return buf.getvalue()


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


def write_eval(metrics: dict, details: dict, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"details": out_dir / DETAILS_FILE, "csv": out_dir / METRICS_CSV, "metrics": out_dir / METRICS_FILE}
    atomic_write_json(paths["details"], details)
    atomic_write_text(paths["csv"], csv_text(metrics, details))
    atomic_write_json(paths["metrics"], metrics)  # last: its presence means the eval finished
    return paths


def eval_folder(path: Path) -> Path:
    """The eval run dir of ``path``: the dir itself, or the folder of its ``tokenizer_metrics.json``."""
    path = Path(path)
    return path.parent if path.is_file() else path


def read_eval(path: Path, *, need_details: bool = True) -> tuple[dict, dict]:
    """``(metrics, details)`` of an eval run dir (or its ``tokenizer_metrics.json``); details ``{}`` if not needed."""
    folder = eval_folder(path)
    needed = [folder / METRICS_FILE] + ([folder / DETAILS_FILE] if need_details else [])
    for p in needed:
        if not p.is_file():
            raise FinemedError(f"{p} is missing; run `finemed tokenizer eval --out {folder}` (or compare) first")
    metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    details = json.loads((folder / DETAILS_FILE).read_text(encoding="utf-8")) if need_details else {}
    return metrics, details


class EvalConfig(StageConfig):
    tokenizers: list[str] = Field(min_length=1)  # bundled names (gpt2, smollm2, …), HF dirs, .json/.model/.tiktoken
    parallel: str = "sib200"  # sib200 | xquad | a SIB-200-style folder | a TSV | a folder of LANG.txt
    langs: list[str] = ["eng_Latn", "deu_Latn"]
    splits: list[str] = list(SIB_SPLITS)
    words: str = "whitespace"  # whitespace | punct
    ref_lang: str = REF_LANG
    plots: bool = True

    @field_validator("words")
    @classmethod
    def _words(cls, v: str) -> str:
        check_words(v)
        return v


class EvalResult(StageResult):
    key_metric: ClassVar[str] = "lowest_fertility"
    lowest_fertility: Optional[str]  # e.g. "o200k_base 1.608 (deu_Latn)": the best on the first non-reference lang
    tokenizers: list[str]
    fertility: dict[str, dict[str, float]]
    parity: dict[str, dict[str, Optional[float]]]  # parity_sum per tokenizer and language
    table: str  # the file with the full table


def fertility_table(metrics: dict) -> dict[str, dict[str, float]]:
    return {n: {lang: m["fertility"] for lang, m in per.items()} for n, per in metrics.items()}


def lowest_fertility(metrics: dict, langs: Sequence[str], ref_lang: str = REF_LANG) -> str | None:
    """``"NAME FERT (LANG)"`` for the tokenizer with the lowest fertility on the first non-reference language."""
    lang = next((x for x in langs if x != ref_lang), langs[0] if langs else None)
    if lang is None or not metrics:
        return None
    name = min(metrics, key=lambda n: metrics[n][lang]["fertility"])
    return f"{name} {metrics[name][lang]['fertility']:.3f} ({lang})"


def run_eval(tokenizer_specs: Sequence[str], *, parallel: str | Path | None, langs: Sequence[str], out_dir: Path,
             words: str = "whitespace", splits: Sequence[str] = SIB_SPLITS, ref_lang: str = REF_LANG,
             plots: bool = True) -> tuple[dict, dict]:
    """Load, evaluate, write the JSON/CSV and the parity and fertility-vs-vocab plots. Returns (metrics, details)."""
    check_words(words)
    data, _ = load_eval_data(parallel, langs, splits, ref_lang)
    toks = load_tokenizers(tokenizer_specs)
    metrics, details = evaluate(toks, data, langs, words=words, ref_lang=ref_lang)
    write_eval(metrics, details, out_dir)
    if plots:

        plot_parity(metrics, out_dir / "parity.png")
        plot_fertility_vs_vocab(metrics, sweep_info(toks), out_dir / "fertility_vs_vocab.png")
    return metrics, details


@stage("tokenizer.eval")
def run(cfg: EvalConfig, run_dir: Path) -> EvalResult:
    """Stage entry: fertility, parity, continued words, bytes/token and vocab use, written under ``run_dir``."""
    metrics, _ = run_eval(cfg.tokenizers, parallel=cfg.parallel, langs=cfg.langs, out_dir=Path(run_dir),
                          words=cfg.words, splits=cfg.splits, ref_lang=cfg.ref_lang, plots=cfg.plots)
    return EvalResult(lowest_fertility=lowest_fertility(metrics, cfg.langs, cfg.ref_lang), tokenizers=list(metrics),
                      fertility=fertility_table(metrics),
                      parity={n: {lang: m["parity_sum"] for lang, m in per.items()} for n, per in metrics.items()},
                      table=str(Path(run_dir) / METRICS_FILE))


def sweep_info(toks: Sequence[AnyTokenizer]) -> dict[str, dict]:
    """Vocab size per tokenizer, plus corpus/algorithm/library for ones trained here (finemed_tokenizer.json)."""
    info = {}
    for tok in toks:
        info[tok.name] = {"vocab_size": tok.vocab_size}
        meta = Path(tok.source).parent / "finemed_tokenizer.json"
        if Path(tok.source).is_file() and meta.is_file():
            info[tok.name].update(json.loads(meta.read_text(encoding="utf-8")))
            info[tok.name]["name"] = tok.name
    return info


@planner("tokenizer.eval")
def plan(config: EvalConfig, ctx) -> dict:
    """``finemed plan``: CPU time, host memory and disk of evaluating the tokenizers (tokenizer_plan)."""
    return eval_cost(len(config.tokenizers), config.parallel, config.langs, config.splits)

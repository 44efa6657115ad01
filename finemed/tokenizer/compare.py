"""The ``tokenizer.compare`` stage: train a sweep (optional), evaluate it with other tokenizers on parallel
data, cost them on language mixes, and plot. ``finemed tokenizer compare`` and recipes run it.

Outputs under ``run_dir``: ``tokenizers/`` (the sweep), ``tokenizer_metrics.json`` / ``tokenizer_metrics.csv`` /
``details.json`` (the eval), ``fertility_vs_vocab.png``, ``parity.png``, ``cost.json`` + ``cost_<i>.md/.png``
(one table per cost spec) and ``findings.md`` (when the sweep has an EN-only and a multilingual corpus); the
runner writes the Result to ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from finemed.core.artifacts import atomic_write_json, atomic_write_text
from finemed.core.config import FinemedError, StageConfig
from finemed.core.stages import StageResult, planner, stage
from finemed.tokenizer.cost import CostSpec, cost_spec
from finemed.tokenizer.evaluate import REF_LANG, evaluate, fertility_table, load_eval_data, load_tokenizers, write_eval
from finemed.tokenizer.findings import english_only_vs_multi, findings_markdown, vocab_to_match_english
from finemed.tokenizer.plots import plot_fertility_vs_vocab, plot_parity
from finemed.tokenizer.sweep import SweepConfig, run_sweep
from finemed.tokenizer.tokenizer_plan import eval_cost, train_cost


class CompareConfig(StageConfig):
    sweep: Optional[SweepConfig] = None
    tokenizers: list[str] = []  # bundled names (gpt2, smollm2, …) or paths, evaluated with the sweep
    parallel: str = "sib200"
    langs: list[str] = ["eng_Latn", "deu_Latn"]
    splits: list[str] = ["train", "dev", "test"]
    words: str = "whitespace"
    ref_lang: str = REF_LANG
    costs: list[CostSpec] = []
    findings: Optional[list[str]] = None  # [EN corpus, multilingual corpus] names of the sweep, e.g. [EN, MULTI]


class CompareResult(StageResult):
    key_metric: ClassVar[str] = "extra_cost"
    extra_cost: Optional[str]  # headline, e.g. "+41.3% smollm2 vs DE-BPE-HF-49 (deu_Latn)"
    extra_cost_fraction: Optional[float]
    tokenizers: list[str]
    costs: list[dict]
    fertility: dict[str, dict[str, float]]
    findings: dict = {}
    skipped: list[dict] = []  # sweep entries whose vocab the corpus could not support


def _findings(config: CompareConfig, metrics: dict, trained: list, skipped: list[dict], run_dir: Path) -> dict:
    en, multi = config.findings
    others = [lang for lang in config.langs if lang != config.ref_lang]
    cmp_rows = english_only_vs_multi(metrics, trained, en, multi, others)
    match_rows = vocab_to_match_english(metrics, trained, en, multi, config.ref_lang)
    skipped_md = "".join(f"- skipped {s['name']}: {s['reason']}\n" for s in skipped)
    atomic_write_text(run_dir / "findings.md", findings_markdown(cmp_rows, match_rows, en, multi)
                      + (f"\n## Skipped\n\n{skipped_md}" if skipped_md else ""))
    return {"en_only_vs_multi": cmp_rows, "vocab_to_match_english": match_rows,
            "en_only_higher_everywhere": all(r["en_only_higher"] for r in cmp_rows),
            "multi_needs_larger_everywhere": all(r["multi_needs_larger"] for r in match_rows)}


@stage("tokenizer.compare")
def run(config: CompareConfig, run_dir: Path) -> CompareResult:
    """Stage entry: sweep + eval + cost + plots (+ findings) under ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not config.sweep and not config.tokenizers:
        raise FinemedError("tokenizer stage: nothing to evaluate; give a sweep, tokenizers, or both")
    if config.findings is not None and len(config.findings) != 2:
        raise FinemedError(f"findings: expected [EN corpus, multilingual corpus], got {config.findings}")
    data, _ = load_eval_data(config.parallel, config.langs, config.splits, config.ref_lang)
    sweep = run_sweep(config.sweep, run_dir / "tokenizers") if config.sweep else None
    trained = sweep.tokenizers if sweep else []
    specs = [t.path + ("/tokenizer.model" if t.library == "sp" else "") for t in trained] + list(config.tokenizers)
    toks = load_tokenizers(specs)
    for tok, t in zip(toks, trained):
        tok.name = t.name
    metrics, details = evaluate(toks, data, config.langs, words=config.words, ref_lang=config.ref_lang)
    write_eval(metrics, details, run_dir)


    info = {n: {"vocab_size": d["vocab_size"]} for n, d in details.items()}
    info.update({t.name: t.model_dump() for t in trained})
    plot_fertility_vs_vocab(metrics, info, run_dir / "fertility_vs_vocab.png")
    plot_parity(metrics, run_dir / "parity.png")

    vocab_sizes = {n: d["vocab_size"] for n, d in details.items()}
    costs, headline, fraction = [], None, None
    for i, spec in enumerate(config.costs):
        out = cost_spec(spec, metrics, vocab_sizes, run_dir, f"cost_{i}")
        if out.headline and headline is None:
            headline, fraction = out.headline, out.extra
        costs.append(out.model_dump(exclude={"headline"}, exclude_none=True))
    atomic_write_json(run_dir / "cost.json", costs)

    skipped = sweep.skipped if sweep else []
    findings = _findings(config, metrics, trained, skipped, run_dir) if config.findings else {}
    return CompareResult(extra_cost=headline, extra_cost_fraction=fraction, tokenizers=list(metrics), costs=costs,
                         fertility=fertility_table(metrics), findings=findings, skipped=skipped)


@planner("tokenizer.compare")
def plan(config: CompareConfig, ctx) -> dict:
    """``finemed plan``: the sweep's training plus the evaluation of every trained and named tokenizer."""
    train = train_cost(config.sweep) if config.sweep else {}
    ev = eval_cost(train.get("tokenizers", 0) + len(config.tokenizers), config.parallel, config.langs, config.splits)
    return {**ev, **{k: v for k, v in train.items() if k in ("tokenizers", "corpus_bytes")},
            "cpu_hours": round(train.get("cpu_hours", 0.0) + ev["cpu_hours"], 4),
            "cpu_time_class": train.get("cpu_time_class", ev["cpu_time_class"]),
            "memory_gib_per_process": max(train.get("memory_gib_per_process", 0.0), ev["memory_gib_per_process"]),
            "disk_gib": round(train.get("disk_gib", 0.0) + ev["disk_gib"], 3),
            "assumes": "; ".join(x for x in (train.get("assumes"), ev["assumes"]) if x)
            + f"; cost tables ({len(config.costs)}) are arithmetic: seconds"}

"""The ``tokenizer.compare`` stage: train a sweep (optional), evaluate it with other tokenizers on parallel
data, cost them on language mixes, and plot. ``finemed tokenizer compare`` and recipes call :func:`run`.

Outputs under ``run_dir``: ``tokenizers/`` (the sweep), ``metrics.json`` / ``metrics.csv`` / ``details.json``
(the eval), ``fertility_vs_vocab.png``, ``parity.png``, ``cost.json`` + ``cost_<i>.md/.png`` (one table per cost
spec), ``findings.md`` (when the sweep has an EN-only and a multilingual corpus) and ``result.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field

from finemed.artifacts import atomic_write_json, atomic_write_text
from finemed.config import FinemedError, StageConfig
from finemed.tokenizer.cost import ModelShape, cost_table, normalise_mix, preset, table_markdown
from finemed.tokenizer.evaluate import REF_LANG, evaluate, load_eval_data, load_tokenizers, write_eval
from finemed.tokenizer.findings import english_only_vs_multi, findings_markdown, vocab_to_match_english
from finemed.tokenizer.sweep import SweepConfig, run_sweep


class CostSpec(StageConfig):
    mix: dict[str, float] = Field(min_length=1)  # lang → weight (share of words)
    model: str = "2.6b"  # a preset of finemed.tokenizer.cost.PRESETS, or "custom" with layers/hidden/seq_len
    layers: Optional[int] = None
    hidden: Optional[int] = None
    seq_len: Optional[int] = None
    tokenizer: Optional[str] = None  # the headline: extra cost of this one ...
    baseline: Optional[str] = None  # ... over this one (default: the cheapest per word)
    recompute: bool = True

    def shape(self) -> ModelShape:
        if self.model == "custom":
            if not (self.layers and self.hidden and self.seq_len):
                raise FinemedError("cost model 'custom' needs layers, hidden and seq_len")
            return ModelShape(name="custom", layers=self.layers, hidden=self.hidden, seq_len=self.seq_len)
        base = preset(self.model)
        return base.model_copy(update={k: v for k, v in {"layers": self.layers, "hidden": self.hidden,
                                                           "seq_len": self.seq_len}.items() if v})


class TokenizerStageConfig(StageConfig):
    sweep: Optional[SweepConfig] = None
    tokenizers: list[str] = []  # bundled names (gpt2, smollm2, …) or paths, evaluated with the sweep
    parallel: str = "sib200"
    langs: list[str] = ["eng_Latn", "deu_Latn"]
    splits: list[str] = ["train", "dev", "test"]
    words: str = "whitespace"
    ref_lang: str = REF_LANG
    costs: list[CostSpec] = []
    findings: Optional[list[str]] = None  # [EN corpus, multilingual corpus] names of the sweep, e.g. [EN, MULTI]


class TokenizerStageResult(BaseModel):
    extra_cost: Optional[str]  # headline, e.g. "+41.3% smollm2 vs DE-BPE-HF-49 (deu_Latn)"
    extra_cost_fraction: Optional[float]
    tokenizers: list[str]
    costs: list[dict]
    fertility: dict[str, dict[str, float]]
    findings: dict = {}
    skipped: list[dict] = []  # sweep entries whose vocab the corpus could not support


def run(config: TokenizerStageConfig, run_dir: Path, *, log=print) -> TokenizerStageResult:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not config.sweep and not config.tokenizers:
        raise FinemedError("tokenizer stage: nothing to evaluate; give a sweep, tokenizers, or both")
    data, _ = load_eval_data(config.parallel, config.langs, config.splits, config.ref_lang)
    sweep = run_sweep(config.sweep, run_dir / "tokenizers", log=log) if config.sweep else None
    trained = sweep.tokenizers if sweep else []
    specs = [t.path + ("/tokenizer.model" if t.library == "sp" else "") for t in trained] + list(config.tokenizers)
    toks = load_tokenizers(specs)
    for tok, t in zip(toks, trained):
        tok.name = t.name
    metrics, details = evaluate(toks, data, config.langs, words=config.words, ref_lang=config.ref_lang)
    write_eval(metrics, details, run_dir)

    from finemed.tokenizer.plots import plot_cost_table, plot_fertility_vs_vocab, plot_parity

    info = {n: {"vocab_size": d["vocab_size"]} for n, d in details.items()}
    info.update({t.name: t.model_dump() for t in trained})
    plot_fertility_vs_vocab(metrics, info, run_dir / "fertility_vs_vocab.png")
    plot_parity(metrics, run_dir / "parity.png")

    vocab_sizes = {n: d["vocab_size"] for n, d in details.items()}
    costs, headline, fraction = [], None, None
    for i, spec in enumerate(config.costs):
        mix = normalise_mix(spec.mix)
        rows = cost_table(metrics, vocab_sizes, mix, spec.shape(), baseline=spec.baseline, recompute=spec.recompute)
        base = spec.baseline or rows[0].tokenizer
        md = table_markdown(rows, base)
        title = f"{spec.shape().name} ({spec.shape().layers}L, h={spec.shape().hidden}, s={spec.shape().seq_len}) on " + \
                ", ".join(f"{k} {v:.0%}" for k, v in mix.items())
        atomic_write_text(run_dir / f"cost_{i}.md", f"{title}\n\n{md}")
        plot_cost_table(md, run_dir / f"cost_{i}.png", title)
        entry = {"mix": mix, "model": spec.shape().model_dump(), "baseline": base, "rows": [r.model_dump() for r in rows]}
        if spec.tokenizer:
            row = next((r for r in rows if r.tokenizer == spec.tokenizer), None)
            if row is None:
                raise FinemedError(f"cost tokenizer {spec.tokenizer!r} is not among {', '.join(vocab_sizes)}")
            entry["extra"] = row.extra_vs_baseline
            if headline is None:
                fraction = row.extra_vs_baseline
                headline = f"{100 * fraction:+.1f}% {spec.tokenizer} vs {base} ({', '.join(mix)})"
        costs.append(entry)
    atomic_write_json(run_dir / "cost.json", costs)

    findings = {}
    if config.findings:
        en, multi = config.findings
        others = [lang for lang in config.langs if lang != config.ref_lang]
        cmp_rows = english_only_vs_multi(metrics, trained, en, multi, others)
        match_rows = vocab_to_match_english(metrics, trained, en, multi, config.ref_lang)
        findings = {"en_only_vs_multi": cmp_rows, "vocab_to_match_english": match_rows,
                    "en_only_higher_everywhere": all(r["en_only_higher"] for r in cmp_rows),
                    "multi_needs_larger_everywhere": all(r["multi_needs_larger"] for r in match_rows)}
        skipped = "".join(f"- skipped {s['name']}: {s['reason']}\n" for s in (sweep.skipped if sweep else []))
        atomic_write_text(run_dir / "findings.md", findings_markdown(cmp_rows, match_rows, en, multi)
                          + (f"\n## Skipped\n\n{skipped}" if skipped else ""))

    result = TokenizerStageResult(
        extra_cost=headline, extra_cost_fraction=fraction, tokenizers=list(metrics), costs=costs,
        fertility={n: {lang: m["fertility"] for lang, m in per.items()} for n, per in metrics.items()},
        findings=findings, skipped=sweep.skipped if sweep else [])
    atomic_write_text(run_dir / "result.json", json.dumps(result.model_dump(), indent=2))
    return result

"""Training cost of a tokenizer: FLOPs per word = fertility × FLOPs per token, on a language mix.

FLOPs per token follow Megatron-LM (Narayanan et al. 2021, eq. 3), for a decoder with ``l`` layers,
hidden size ``h``, sequence length ``s`` and vocabulary ``V``, forward plus backward *with* activation
recomputation (one extra forward)::

    F(token) = 96 · l · h² · (1 + s / (6h) + V / (16 · l · h))

Without recomputation the factor is 72 instead of 96 (``recompute=False``). The ``V`` term is the output
layer, so a bigger vocabulary costs more per token but, through lower fertility, may cost less per word.
(the formula lives in ``finemed/models/compute.py``, shared with ``finemed plan``).
The extra cost of tokenizer A over B on a mix with weights ``w_L`` (shares of the words) is::

    extra = Σ_L w_L · fert_A(L) · F(V_A)  /  Σ_L w_L · fert_B(L) · F(V_B)  − 1

This is how the paper's "up to 68%" arises: an English tokenizer has a higher fertility on the other
languages. No library ships this model (it is three lines of arithmetic), so it lives here.

The ``tokenizer.cost`` stage costs the tokenizers of an eval run dir (``tokenizer_metrics.json`` +
``details.json``) on one mix and writes ``cost.json``, ``cost.md`` and ``cost.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from pydantic import BaseModel, Field

from finemed.core.artifacts import atomic_write_json, atomic_write_text
from finemed.core.config import FinemedError, StageConfig
from finemed.core.plan_estimates import cpu
from finemed.core.stages import StageResult, planner, stage
from finemed.models.compute import ModelShape, flops_per_token
from finemed.tokenizer.evaluate import eval_folder, read_eval
from finemed.tokenizer.plots import plot_cost_table

PRESETS: dict[str, ModelShape] = {
    "smollm2": ModelShape(name="smollm2", layers=30, hidden=576, seq_len=2048),  # its pre-training context
    "2.6b": ModelShape(name="2.6b", layers=32, hidden=2560, seq_len=2048),  # the paper's 2.6B models
    "7b": ModelShape(name="7b", layers=32, hidden=4096, seq_len=4096),
}


def preset(name: str) -> ModelShape:
    if name not in PRESETS:
        raise FinemedError(f"model preset {name!r} unknown; expected one of {', '.join(PRESETS)} or give "
                           f"--layers/--hidden/--seq-len")
    return PRESETS[name]


def normalise_mix(mix: dict[str, float]) -> dict[str, float]:
    if not mix:
        raise FinemedError("the language mix is empty; give weights such as eng_Latn=0.5,deu_Latn=0.5")
    if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise FinemedError(f"language mix weights must be ≥ 0 with a positive sum, got {mix}")
    total = sum(mix.values())
    return {lang: w / total for lang, w in mix.items()}


def parse_mix(text: str) -> dict[str, float]:
    """``eng_Latn=0.2,deu_Latn=0.8`` (or bare codes, equal weights) → weights."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        lang, _, w = part.partition("=")
        try:
            out[lang.strip()] = float(w) if w else 1.0
        except ValueError:
            raise FinemedError(f"--mix {text!r}: weight {w!r} of {lang} is not a number") from None
    return normalise_mix(out)


class CostRow(BaseModel):
    tokenizer: str
    vocab_size: int
    fertility_mix: float
    flops_per_token: float
    flops_per_word: float
    extra_vs_baseline: float  # fraction: 0.68 = 68% more FLOPs per word than the baseline


def cost_table(metrics: dict, vocab_sizes: dict[str, int], mix: dict[str, float], shape: ModelShape, *,
               baseline: str | None = None, recompute: bool = True) -> list[CostRow]:
    """One row per tokenizer in ``metrics``; ``baseline`` defaults to the cheapest per word."""
    mix = normalise_mix(mix)
    rows = []
    for name, per_lang in metrics.items():
        missing = [lang for lang in mix if lang not in per_lang]
        if missing:
            raise FinemedError(f"tokenizer {name}: no metrics for {', '.join(missing)} in the mix; evaluate those "
                               f"languages first (finemed tokenizer eval --langs ...)")
        if name not in vocab_sizes:
            raise FinemedError(f"tokenizer {name}: vocab size unknown (details.json missing?)")
        fert = sum(w * per_lang[lang]["fertility"] for lang, w in mix.items())
        fpt = flops_per_token(shape, vocab_sizes[name], recompute=recompute)
        rows.append(CostRow(tokenizer=name, vocab_size=vocab_sizes[name], fertility_mix=fert, flops_per_token=fpt,
                            flops_per_word=fert * fpt, extra_vs_baseline=0.0))
    if not rows:
        raise FinemedError("no tokenizers to cost; the metrics are empty")
    by_name = {r.tokenizer: r for r in rows}
    if baseline is not None and baseline not in by_name:
        raise FinemedError(f"baseline tokenizer {baseline!r} not in the metrics; have {', '.join(by_name)}")
    base = by_name[baseline] if baseline else min(rows, key=lambda r: r.flops_per_word)
    for r in rows:
        r.extra_vs_baseline = r.flops_per_word / base.flops_per_word - 1
    return sorted(rows, key=lambda r: r.flops_per_word)


def extra_cost(metrics: dict, vocab_sizes: dict[str, int], mix: dict[str, float], shape: ModelShape,
               tokenizer: str, baseline: str, *, recompute: bool = True) -> float:
    """Extra training FLOPs per word of ``tokenizer`` over ``baseline`` on ``mix`` (0.68 = +68%)."""
    table = cost_table(metrics, vocab_sizes, mix, shape, baseline=baseline, recompute=recompute)
    rows = {r.tokenizer: r for r in table}
    if tokenizer not in rows:
        raise FinemedError(f"tokenizer {tokenizer!r} not in the metrics; have {', '.join(rows)}")
    return rows[tokenizer].extra_vs_baseline


def table_markdown(rows: list[CostRow], baseline: str) -> str:
    lines = [f"| tokenizer | vocab | fertility (mix) | GFLOPs/token | GFLOPs/word | extra vs {baseline} |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.tokenizer} | {r.vocab_size} | {r.fertility_mix:.3f} | {r.flops_per_token / 1e9:.3f} | "
                     f"{r.flops_per_word / 1e9:.3f} | {100 * r.extra_vs_baseline:+.1f}% |")
    return "\n".join(lines) + "\n"


class CostSpec(StageConfig):
    """One cost table: a language mix, a model shape, and optionally the headline pair (tokenizer vs baseline)."""

    mix: dict[str, float] = Field(min_length=1)  # lang → weight (share of words)
    model: str = "2.6b"  # a preset of PRESETS, or "custom" with layers/hidden/seq_len
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


class CostOutcome(BaseModel):
    """One costed mix: what ``cost.json`` holds, plus the headline when the spec names a tokenizer."""

    mix: dict[str, float]
    model: dict
    baseline: str
    rows: list[CostRow]
    extra: Optional[float] = None
    headline: Optional[str] = None


def cost_spec(spec: CostSpec, metrics: dict, vocab_sizes: dict[str, int], out_dir: Path, stem: str) -> CostOutcome:
    """Cost ``spec`` and write ``STEM.md`` and ``STEM.png`` under ``out_dir``."""

    mix, shape = normalise_mix(spec.mix), spec.shape()
    rows = cost_table(metrics, vocab_sizes, mix, shape, baseline=spec.baseline, recompute=spec.recompute)
    base = spec.baseline or rows[0].tokenizer
    md = table_markdown(rows, base)
    title = (f"{shape.name} ({shape.layers}L, h={shape.hidden}, s={shape.seq_len}) on "
             + ", ".join(f"{k} {v:.0%}" for k, v in mix.items()))
    atomic_write_text(out_dir / f"{stem}.md", f"{title}\n\n{md}")
    plot_cost_table(md, out_dir / f"{stem}.png", title)
    outcome = CostOutcome(mix=mix, model=shape.model_dump(), baseline=base, rows=rows)
    if spec.tokenizer:
        row = next((r for r in rows if r.tokenizer == spec.tokenizer), None)
        if row is None:
            raise FinemedError(f"cost tokenizer {spec.tokenizer!r} is not among {', '.join(vocab_sizes)}")
        outcome.extra = row.extra_vs_baseline
        outcome.headline = f"{100 * row.extra_vs_baseline:+.1f}% {spec.tokenizer} vs {base} ({', '.join(mix)})"
    return outcome


class CostConfig(CostSpec):
    metrics: str  # an eval run dir (tokenizer_metrics.json + details.json), or its tokenizer_metrics.json


class CostResult(StageResult):
    key_metric: ClassVar[str] = "extra_cost"
    extra_cost: Optional[str]  # e.g. "+41.3% gpt2 vs o200k_base (deu_Latn)" when a tokenizer is named
    extra_cost_fraction: Optional[float]
    baseline: str
    cheapest: str
    model: dict
    mix: dict[str, float]
    extra_vs_baseline: dict[str, float]  # per tokenizer
    table: str  # cost.md


@stage("tokenizer.cost")
def run(cfg: CostConfig, run_dir: Path) -> CostResult:
    """Stage entry: cost the eval run dir ``cfg.metrics`` on ``cfg.mix``; write cost.json/.md/.png."""
    run_dir = Path(run_dir)
    if eval_folder(Path(cfg.metrics)).resolve() == run_dir.resolve():
        raise FinemedError(f"cost: --out {run_dir} is the eval run dir itself; write the cost to its own folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics, details = read_eval(Path(cfg.metrics))
    out = cost_spec(cfg, metrics, {n: d["vocab_size"] for n, d in details.items()}, run_dir, "cost")
    atomic_write_json(run_dir / "cost.json", out.model_dump(exclude={"headline"}))
    return CostResult(extra_cost=out.headline, extra_cost_fraction=out.extra, baseline=out.baseline,
                      cheapest=out.rows[0].tokenizer, model=out.model, mix=out.mix,
                      extra_vs_baseline={r.tokenizer: r.extra_vs_baseline for r in out.rows},
                      table=str(run_dir / "cost.md"))


@planner("tokenizer.cost")
def plan(cfg: CostConfig, ctx) -> dict:
    """``finemed plan``: a cost table is arithmetic over an eval's metrics (seconds of CPU, a few KB)."""
    return {**cpu(2.0), "disk_gib": 0.0, "assumes": "FLOPs per word = fertility x FLOPs per token for each "
            "tokenizer in the eval: arithmetic, plus one plot"}

"""Stage ``papers.tokenizer_choice``: the findings of "Tokenizer Choice For LLM Training" (Ali et al. 2024), in
miniature, from the runs of ``recipes/papers/tokenizer-choice-mini.yaml``.

Inputs: the ``tokenizer.compare`` run dir (fertility and parity on SIB-200, the sweep's tokenizers) and, per
from-scratch model, its ``train.cpt``, ``eval.bpb`` and ``eval.sib200_probe`` run dirs. It computes:

- **Spearman ρ** (scipy) of fertility and parity against held-out bpb and SIB-200 probe accuracy, pooled over
  (model, language) pairs and within each language across models, with percentile bootstrap CIs (pairs resampled
  with replacement, ``bootstrap`` times, seeded). Parity is English-relative, so its pooled ρ leaves English out.
- **Compute**: the training FLOPs of each model (tokens × Megatron FLOPs/token of its shape and vocabulary, no
  recomputation: the cost model's own formula) and whether the budgets are equal; FLOPs per word and measured
  seconds per word on the training text (fertility on that text, whitespace words).
- **Measured vs predicted extra cost** of each EN-only tokenizer over its multilingual twin (same algorithm,
  library, vocab): measured = the FLOPs each needs to reach the same held-out bpb on the 5-language set, read off
  both learning curves (:mod:`finemed.papers.tokenizer_cost`); the ratio of training seconds per word of one timed
  run each is shown beside it, not judged; predicted = ``finemed.tokenizer.cost`` on an equal 5-language mix with
  SIB-200 fertility (and, to separate the two error sources, with training-text fertility).
- **Vocab to match English**: the multilingual vocab whose English fertility equals the EN-only tokenizer's,
  interpolated linearly in log(vocab) between the sweep's sizes (beyond them: extrapolated, marked).
- **Claims**: the recipe's pre-registered claims, judged by :mod:`finemed.papers.tokenizer_claims`.

Writes ``findings.md`` (the report renders it) and the same text to ``results_md`` (``docs/results/...``).
Hand-written because the statistics are a few lines over scipy; no library knows these run dirs.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import ClassVar, Optional

from pydantic import Field, field_validator

from finemed.core.artifacts import atomic_write_json, atomic_write_text, read_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import cpu
from finemed.core.stages import StageResult, planner, stage
from finemed.core.texts import iter_texts
from finemed.models.arch import parameter_counts
from finemed.models.compute import ModelShape, flops_per_token
from finemed.models.loading import load_tokenizer
from finemed.papers import claims as K
from finemed.papers import tokenizer_claims as TC
from finemed.papers.measures import require
from finemed.papers.tokenizer_cost import bpb_curve, extra_cost_to_same_bpb, fmt_cost
from finemed.tokenizer.cost import extra_cost
from finemed.tokenizer.metrics import count_words
from finemed.tokenizer.sources import take_budget

log = get_logger(__name__)
LANGS = ["eng_Latn", "deu_Latn", "fra_Latn", "ita_Latn", "spa_Latn"]
SHORT = {"eng_Latn": "en", "deu_Latn": "de", "fra_Latn": "fr", "ita_Latn": "it", "spa_Latn": "es"}


class ModelRuns(StageConfig):
    """The run dirs of one from-scratch model."""

    train: str  # train.cpt
    bpb: str  # eval.bpb, with one set per language named by its SIB-200 code
    probe: str  # eval.sib200_probe


class TokenizerChoiceConfig(StageConfig):
    compare: str  # the tokenizer.compare run dir
    models: dict[str, ModelRuns] = Field(min_length=3)  # tokenizer name (as in the compare run) → its runs
    en_corpus: str = "EN"
    multi_corpus: str = "MULTI"
    langs: list[str] = Field(default_factory=lambda: list(LANGS))
    ref_lang: str = "eng_Latn"
    # lang → text source and the bytes of it the models train on: fertility on the training text
    train_text: dict[str, str] = Field(default_factory=dict)
    train_text_bytes: int = Field(default=400_000, ge=1)
    shape: ModelShape = ModelShape(layers=6, hidden=256, seq_len=256, name="mini")
    bootstrap: int = Field(default=2000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int = 0
    cost_set: str = "mix"  # the train.cpt held-out set whose learning curves measure the extra cost
    results_md: Optional[str] = None  # also write findings.md here (docs/results/tokenizer-choice.md)
    claims: dict[str, K.ClaimSpec] = Field(description="the pre-registered claims, ids " + ", ".join(TC.CLAIMS))

    @field_validator("claims")
    @classmethod
    def _registered(cls, v: dict[str, K.ClaimSpec]) -> dict[str, K.ClaimSpec]:
        K.require_ids(v, TC.CLAIMS, "papers.tokenizer_choice")
        return v


class TokenizerChoiceResult(StageResult):
    key_metric: ClassVar[str] = "rho_fertility_sib"
    rho_fertility_sib: float
    rho_fertility_bpb: float
    n_models: int
    flops_equal_within: float  # max relative FLOPs difference between models
    measured_extra_cost: dict[str, float]
    predicted_extra_cost: dict[str, float]
    vocab_to_match_english: dict[str, Optional[float]]
    claims: dict[str, str]
    claims_hash: str
    models: list[dict]
    correlations: list[dict]
    findings: str


def _json(path: Path) -> dict:
    return read_json(require(path, "papers.tokenizer_choice"))


def spearman_ci(x: list[float], y: list[float], *, n_boot: int, confidence: float, seed: int) -> dict:
    """Spearman ρ and its percentile bootstrap CI (pairs resampled); NaN where ρ is undefined."""
    from scipy.stats import spearmanr

    def rho(xs, ys) -> float:
        if len(set(xs)) < 2 or len(set(ys)) < 2:
            return float("nan")
        return float(spearmanr(xs, ys).statistic)

    r = rho(x, y)
    rng = random.Random(seed)
    boots = []
    for _ in range(n_boot):
        idx = [rng.randrange(len(x)) for _ in x]
        b = rho([x[i] for i in idx], [y[i] for i in idx])
        if not math.isnan(b):
            boots.append(b)
    boots.sort()
    alpha = (1 - confidence) / 2
    lo = boots[int(alpha * (len(boots) - 1))] if boots else float("nan")
    hi = boots[int((1 - alpha) * (len(boots) - 1))] if boots else float("nan")
    return {"rho": r, "lo": lo, "hi": hi, "n": len(x)}


def log_interp_vocab(points: list[tuple[int, float]], target: float) -> tuple[Optional[float], str]:
    """The vocab at which fertility (linear in log vocab between sweep sizes) reaches ``target``."""
    pts = sorted(points)
    if len(pts) < 2:
        return None, "one size only"
    for (v0, f0), (v1, f1) in zip(pts, pts[1:]):
        if min(f0, f1) <= target <= max(f0, f1) and f0 != f1:
            t = (f0 - target) / (f0 - f1)
            return math.exp(math.log(v0) + t * (math.log(v1) - math.log(v0))), "interpolated"
    (v0, f0), (v1, f1) = pts[-2], pts[-1]
    if target <= pts[0][1] and f1 < f0:  # below the largest size's fertility: extrapolate upwards
        t = (f0 - target) / (f0 - f1)
        return math.exp(math.log(v0) + t * (math.log(v1) - math.log(v0))), "extrapolated"
    if target >= pts[0][1]:
        return float(pts[0][0]), "reached at the smallest size"
    return None, "not reached"


def training_fertility(tok_dir: str, texts: dict[str, list[str]]) -> dict[str, float]:
    """Tokens per whitespace word of ``tok_dir`` on each language's training texts."""

    tok = load_tokenizer(Path(tok_dir))
    out = {}
    for lang, ts in texts.items():
        tokens = sum(len(ids) for ids in tok(ts, add_special_tokens=False)["input_ids"])
        out[lang] = tokens / max(1, sum(count_words(t) for t in ts))
    return out


def _model_rows(cfg: TokenizerChoiceConfig, metrics: dict, details: dict, sweep: dict,
                train_texts: dict[str, list[str]]) -> list[dict]:
    rows = []
    for name, runs in cfg.models.items():
        if name not in metrics:
            raise FinemedError(f"papers.tokenizer_choice: model {name!r} names no tokenizer of {cfg.compare}; "
                               f"use one of {', '.join(metrics)}")
        train = _json(Path(runs.train) / "metrics.json")
        tcfg = _json(Path(runs.train) / "manifest.json").get("config", {})
        bpb = _json(Path(runs.bpb) / "metrics.json")["bpb"]
        probe = _json(Path(runs.probe) / "metrics.json")
        vocab = int(details[name]["vocab_size"])
        tokens = int(train["steps"]) * int(tcfg.get("batch_size", 1)) * int(tcfg.get("grad_accum", 1)) \
            * int(tcfg.get("seq_len", cfg.shape.seq_len))
        fpt = flops_per_token(cfg.shape, vocab, recompute=False)
        model_cfg = _json(Path(train["model_dir"]) / "config.json")
        tok_dir = sweep[name]["path"]
        fert_train = training_fertility(tok_dir, train_texts) if train_texts else {}
        fert_mix = sum(fert_train.values()) / len(fert_train) if fert_train else float("nan")
        words = tokens / fert_mix if fert_train else float("nan")
        rows.append({
            "tokenizer": name, **{k: sweep[name][k] for k in ("corpus", "algorithm", "library")},
            "vocab": vocab, "hidden": model_cfg.get("hidden_size"), "layers": model_cfg.get("num_hidden_layers"),
            "steps": int(train["steps"]), "tokens": tokens, "flops": tokens * fpt, "flops_per_token": fpt,
            "train_seconds": float(train["train_seconds"]), "final_loss": train.get("final_loss"),
            "fertility_train_mix": fert_mix, "flops_per_word": fpt * fert_mix,
            "seconds_per_mword": 1e6 * float(train["train_seconds"]) / words if fert_train else float("nan"),
            "fertility": {lang: metrics[name][lang]["fertility"] for lang in cfg.langs},
            "parity": {lang: metrics[name][lang]["parity"] for lang in cfg.langs},
            "fertility_train": fert_train,
            "bpb": {lang: bpb.get(lang) for lang in cfg.langs},
            "sib": {lang: probe["accuracy"].get(lang) for lang in cfg.langs},
            "sib_majority": probe.get("majority", {}), "sib_n": probe.get("n_test", {}),
        })
    return rows


def _correlations(cfg: TokenizerChoiceConfig, rows: list[dict]) -> list[dict]:
    out = []
    for metric in ("fertility", "parity"):
        for score in ("sib", "bpb"):
            scopes = [("pooled", [lang for lang in cfg.langs if metric == "fertility" or lang != cfg.ref_lang])]
            scopes += [(lang, [lang]) for lang in cfg.langs if metric == "fertility" or lang != cfg.ref_lang]
            for scope, langs in scopes:
                pairs = [(r[metric][lang], r[score][lang]) for r in rows for lang in langs
                         if r[metric][lang] is not None and r[score][lang] is not None]
                if len(pairs) < 3:
                    continue
                ci = spearman_ci([p[0] for p in pairs], [p[1] for p in pairs], n_boot=cfg.bootstrap,
                                 confidence=cfg.confidence, seed=cfg.seed)
                out.append({"metric": metric, "score": score, "scope": scope, **ci})
    return out


def _costs(cfg: TokenizerChoiceConfig, rows: list[dict], metrics: dict, details: dict) -> list[dict]:
    by = {(r["corpus"], r["algorithm"], r["library"], r["vocab"]): r for r in rows}
    mix = {lang: 1.0 for lang in cfg.langs}
    vocab_sizes = {n: int(d["vocab_size"]) for n, d in details.items()}
    out = []
    for (corpus, alg, lib, vocab), r in sorted(by.items()):
        twin = by.get((cfg.multi_corpus, alg, lib, vocab))
        if corpus != cfg.en_corpus or twin is None:
            continue
        predicted = extra_cost(metrics, vocab_sizes, mix, cfg.shape, r["tokenizer"], twin["tokenizer"],
                               recompute=False)
        curves = [bpb_curve(Path(cfg.models[x["tokenizer"]].train), cfg.cost_set) for x in (r, twin)]
        reach = extra_cost_to_same_bpb(*curves, r["flops"] / r["steps"], twin["flops"] / twin["steps"])
        out.append({"en": r["tokenizer"], "multi": twin["tokenizer"], **reach,
                    "measured_seconds": r["seconds_per_mword"] / twin["seconds_per_mword"] - 1,
                    "predicted": predicted,
                    "predicted_train_text": r["flops_per_word"] / twin["flops_per_word"] - 1})
    return out


def _vocab_match(cfg: TokenizerChoiceConfig, metrics: dict, sweep: dict) -> list[dict]:
    out = []
    for name, t in sorted(sweep.items()):
        if t["corpus"] != cfg.en_corpus:
            continue
        target = metrics[name][cfg.ref_lang]["fertility"]
        points = [(m["vocab_size"], metrics[n][cfg.ref_lang]["fertility"]) for n, m in sweep.items()
                  if m["corpus"] == cfg.multi_corpus and m["algorithm"] == t["algorithm"]
                  and m["library"] == t["library"]]
        need, how = log_interp_vocab(points, target)
        out.append({"en": name, "vocab": t["vocab_size"], "english_fertility": target, "multi_vocab": need,
                    "how": how, "ratio": need / t["vocab_size"] if need else None})
    return out


def _fmt_ci(c: dict) -> str:
    if math.isnan(c["rho"]):
        return "undefined"
    return f"{c['rho']:+.2f} [{c['lo']:+.2f}, {c['hi']:+.2f}]"


def findings_markdown(cfg: TokenizerChoiceConfig, rows: list[dict], corrs: list[dict], costs: list[dict],
                      match: list[dict], claim_lines: list[str], flops_spread: float) -> str:
    pct = f"{cfg.confidence:.0%}"
    short = {lang: SHORT.get(lang, lang[:3]) for lang in cfg.langs}
    lines = ["# Tokenizer choice in miniature: findings", "",
             f"{len(rows)} causal LMs trained from scratch, one per tokenizer, on the same 5-language Debian text "
             f"with the same FLOPs budget (max difference {100 * flops_spread:.2f}%).", "",
             "## Claims of the paper (pre-registered in the recipe)", ""]
    lines += claim_lines
    lines += ["", "## Models", "",
              "| tokenizer | vocab | params (M) | steps | tokens | PFLOPs | train s | s / M words | GFLOPs/word "
              "| fert (train) | " + " | ".join(f"bpb {short[lang]}" for lang in cfg.langs) + " | "
              + " | ".join(f"SIB {short[lang]}" for lang in cfg.langs) + " |",
              "|" + "---|" * (10 + 2 * len(cfg.langs))]
    for r in rows:
        lines.append(
            f"| {r['tokenizer']} | {r['vocab']} | {r.get('params', 0) / 1e6:.2f} | {r['steps']} | {r['tokens']:,} "
            f"| {r['flops'] / 1e15:.3f} | {r['train_seconds']:.0f} | {r['seconds_per_mword']:.0f} "
            f"| {r['flops_per_word'] / 1e9:.3f} | {r['fertility_train_mix']:.2f} | "
            + " | ".join(f"{r['bpb'][lang]:.3f}" if r['bpb'][lang] is not None else "-" for lang in cfg.langs)
            + " | " + " | ".join(f"{r['sib'][lang]:.3f}" if r['sib'][lang] is not None else "-"
                                 for lang in cfg.langs) + " |")
    maj = rows[0]["sib_majority"] if rows else {}
    if maj:
        lines += ["", "SIB-200 majority-class accuracy (floor): "
                  + ", ".join(f"{short.get(k, k)} {v:.3f}" for k, v in maj.items())]
    lines += ["", f"## Spearman ρ with {pct} bootstrap CIs ({cfg.bootstrap} resamples)", "",
              "Fertility and parity on SIB-200 dev+test; bpb on held-out Debian text; SIB-200 = probe accuracy.", "",
              "| metric | downstream | scope | n | ρ [CI] |", "|---|---|---|---|---|"]
    lines += [f"| {c['metric']} | {'SIB-200 acc' if c['score'] == 'sib' else 'bpb'} | {c['scope']} | {c['n']} "
              f"| {_fmt_ci(c)} |" for c in corrs]
    lines += ["", "## Extra training cost of EN-only tokenizers on the 5-language mix", "",
              f"Measured: the FLOPs each model needs to reach the worse of the two final held-out bpbs on the "
              f"5-language set `{cfg.cost_set}` (steps to it read off the learning curves, linear between eval "
              "points). Seconds per word: one timed run each, shown, not judged.", "",
              "| EN-only | multilingual twin | target bpb | steps EN / MULTI | measured (FLOPs to same bpb) "
              "| seconds per word (one run) | predicted (cost model, SIB-200 fertility) "
              "| predicted (training-text fertility) |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['en']} | {c['multi']} | {c['target_bpb']:.3f} | {c['en_steps']:.1f} / {c['multi_steps']:.1f} "
              f"| {fmt_cost(c['measured'])} | {100 * c['measured_seconds']:+.1f}% | {100 * c['predicted']:+.1f}% "
              f"| {100 * c['predicted_train_text']:+.1f}% |" for c in costs]
    lines += ["", "## Vocabulary a 5-language tokenizer needs to match the EN-only English fertility", "",
              "| EN-only | vocab | English fertility | 5-language vocab needed | ratio |", "|---|---|---|---|---|"]
    for m in match:
        need = f"{m['multi_vocab']:,.0f} ({m['how']})" if m["multi_vocab"] else m["how"]
        ratio = f"{m['ratio']:.1f}x" if m["ratio"] else "-"
        lines.append(f"| {m['en']} | {m['vocab']} | {m['english_fertility']:.3f} | {need} | {ratio} |")
    return "\n".join(lines) + "\n"


@stage("papers.tokenizer_choice")
def run(cfg: TokenizerChoiceConfig, run_dir: Path) -> TokenizerChoiceResult:
    """Stage entry: the findings table; writes ``findings.md``, ``findings.json`` (and ``results_md``)."""

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    compare = Path(cfg.compare)
    metrics, details = _json(compare / "tokenizer_metrics.json"), _json(compare / "details.json")
    sweep = {t["name"]: t for t in _json(compare / "tokenizers" / "sweep.json")["tokenizers"]}
    train_texts = {lang: take_budget(iter_texts(src), cfg.train_text_bytes)[0] for lang, src in cfg.train_text.items()}
    rows = _model_rows(cfg, metrics, details, sweep, train_texts)
    for r in rows:
        r["params"] = parameter_counts(str(Path(_json(Path(cfg.models[r["tokenizer"]].train) / "metrics.json")
                                                ["model_dir"])))["total"]
    flops = [r["flops"] for r in rows]
    spread = (max(flops) - min(flops)) / min(flops) if min(flops) > 0 else float("nan")
    corrs = _correlations(cfg, rows)
    costs = _costs(cfg, rows, metrics, details)
    match = _vocab_match(cfg, metrics, sweep)
    verdicts = K.judge_all(cfg.claims, TC.evidence(cfg, rows, corrs, costs, match))
    claims = {cid: v.line() for cid, v in verdicts.items()}
    md = findings_markdown(cfg, rows, corrs, costs, match, K.table(verdicts, cfg.claims), spread)
    atomic_write_text(run_dir / "findings.md", md)
    if cfg.results_md:
        atomic_write_text(Path(cfg.results_md), md)
    atomic_write_json(run_dir / "findings.json", {"models": rows, "correlations": corrs, "costs": costs,
                                                  "vocab_to_match_english": match,
                                                  "claims": {k: v.model_dump() for k, v in verdicts.items()},
                                                  "claims_hash": K.claims_hash(cfg.claims)})
    pooled = {(c["metric"], c["score"]): c["rho"] for c in corrs if c["scope"] == "pooled"}
    return TokenizerChoiceResult(
        rho_fertility_sib=pooled.get(("fertility", "sib"), float("nan")),
        rho_fertility_bpb=pooled.get(("fertility", "bpb"), float("nan")), n_models=len(rows),
        flops_equal_within=spread, measured_extra_cost={c["en"]: c["measured"] for c in costs},
        predicted_extra_cost={c["en"]: c["predicted"] for c in costs},
        vocab_to_match_english={m["en"]: m["multi_vocab"] for m in match}, claims=claims,
        claims_hash=K.claims_hash(cfg.claims), models=rows,
        correlations=corrs, findings=str(run_dir / "findings.md"))


@planner("papers.tokenizer_choice")
def plan(cfg: TokenizerChoiceConfig, ctx) -> dict:
    """``finemed plan``: reads earlier run dirs; CPU for the bootstrap and the training-text fertility."""
    seconds = cfg.bootstrap * 0.002 * (1 + len(cfg.langs)) + len(cfg.models) * len(cfg.train_text) \
        * cfg.train_text_bytes / 5e6
    return {**cpu(seconds), "disk_gib": 0.0,
            "assumes": "~2 ms per bootstrap resample and correlation; tokenising the training text at ~5 MB/s"}

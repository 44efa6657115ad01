"""Stage ``eval.pairwise`` (alias ``eval.winrates``): win-rates from pairwise outcomes: W/T/L, Bradley–Terry
with bootstrap CIs, length-controlled, fold-change.

- win-rate = (wins + ties/2) / (wins + ties + losses); ``invalid`` outcomes are counted but left out;
- Bradley–Terry as Arena-Hard computes it: a logistic regression (scikit-learn, no intercept) on rows with
  +1 for the first model and -1 for the second, ties entered as one win each way; scores on the Elo scale
  (400/ln 10 · β + 1000); 95% CIs from a bootstrap over prompts;
- length-controlled win-rate vs a reference: AlpacaEval 2's GLM, ``P(m beats ref) = σ(θ + φ·tanh(Δlen/σ_Δ))``
  fitted per model, reported as ``σ(θ)`` (the win-rate at equal length); without the instruction-difficulty
  terms that AlpacaEval downloads from the hub;
- fold-change: win-rate(after vs ref) / win-rate(before vs ref) — the paper's 3.5x;
- a heatmap PNG of the pairwise win-rate matrix.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from finemed.core.artifacts import atomic_path, atomic_write_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.engine import Engine, VLLMSettings
from finemed.core.plan_estimates import JUDGMENT_BYTES, cpu, decode_steps, earlier, gib, inference, readable_now
from finemed.core.stages import StageResult, planner, stage
from finemed.evaluation.answers import load_answers, write_answers
from finemed.evaluation.judge import PairJudgment, make_pairs, run_pairwise

ELO_SCALE, ELO_BASE = 400.0 / math.log(10), 1000.0


class FoldSpec(BaseModel):
    before: str
    after: str
    reference: str


def pair_table(judgments: list[PairJudgment]) -> dict[str, dict[str, dict[str, float]]]:
    """``{m1: {m2: {win, tie, loss, invalid, n, winrate}}}`` for every ordered pair (both directions)."""
    t: dict[str, dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: {"win": 0, "tie": 0, "loss": 0, "invalid": 0}))
    for j in judgments:
        ab, ba = t[j.model_a][j.model_b], t[j.model_b][j.model_a]
        if j.outcome == "invalid":
            ab["invalid"] += 1
            ba["invalid"] += 1
        elif j.outcome == "tie":
            ab["tie"] += 1
            ba["tie"] += 1
        else:
            (ab if j.outcome == "a" else ba)["win"] += 1
            (ba if j.outcome == "a" else ab)["loss"] += 1
    out: dict[str, dict[str, dict[str, float]]] = {}
    for m1, row in t.items():
        out[m1] = {}
        for m2, c in row.items():
            n = c["win"] + c["tie"] + c["loss"]
            out[m1][m2] = {**c, "n": n, "winrate": (c["win"] + 0.5 * c["tie"]) / n if n else float("nan")}
    return out


def overall_winrates(table) -> dict[str, float]:
    res = {}
    for m, row in table.items():
        w = sum(c["win"] for c in row.values())
        t = sum(c["tie"] for c in row.values())
        n = sum(c["n"] for c in row.values())
        res[m] = (w + 0.5 * t) / n if n else float("nan")
    return res


def _bt_fit(judgments: list[PairJudgment], models: list[str]) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    idx = {m: i for i, m in enumerate(models)}
    X, y = [], []
    for j in judgments:
        if j.outcome == "invalid":
            continue
        row = np.zeros(len(models))
        row[idx[j.model_a]], row[idx[j.model_b]] = 1.0, -1.0
        if j.outcome in ("a", "tie"):
            X.append(row), y.append(1)
        if j.outcome in ("b", "tie"):
            X.append(row), y.append(0)
    if len(set(y)) < 2:
        return np.zeros(len(models))
    lr = LogisticRegression(fit_intercept=False, C=1e6, max_iter=2000, tol=1e-8)
    lr.fit(np.array(X), np.array(y))
    beta = lr.coef_[0]
    return beta - beta.mean()


def bradley_terry(judgments: list[PairJudgment], *, bootstrap: int = 200, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{model: {score, lo, hi, rank}}`` on the Elo scale; CIs from resampling prompts with replacement."""
    models = sorted({j.model_a for j in judgments} | {j.model_b for j in judgments})
    point = _bt_fit(judgments, models)
    by_prompt: dict[str, list[PairJudgment]] = defaultdict(list)
    for j in judgments:
        by_prompt[j.prompt_id].append(j)
    prompts = sorted(by_prompt)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(bootstrap):
        pick = rng.integers(0, len(prompts), len(prompts))
        boots.append(_bt_fit([j for k in pick for j in by_prompt[prompts[k]]], models))
    boots_arr = np.array(boots) if boots else point[None, :]
    lo, hi = np.percentile(boots_arr, 2.5, axis=0), np.percentile(boots_arr, 97.5, axis=0)
    order = np.argsort(-point)
    rank = {models[i]: r + 1 for r, i in enumerate(order)}
    return {m: {"score": ELO_BASE + ELO_SCALE * point[i], "lo": ELO_BASE + ELO_SCALE * lo[i],
                "hi": ELO_BASE + ELO_SCALE * hi[i], "rank": rank[m]} for i, m in enumerate(models)}


def length_controlled(judgments: list[PairJudgment], reference: str) -> dict[str, dict[str, float]]:
    """AlpacaEval-2-style LC win-rate of every model vs ``reference`` (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)  # model -> (len diff, y in {0, .5, 1})
    for j in judgments:
        if j.outcome == "invalid" or reference not in (j.model_a, j.model_b):
            continue
        other, first = (j.model_b, False) if j.model_a == reference else (j.model_a, True)
        diff = (j.len_a - j.len_b) if first else (j.len_b - j.len_a)
        y = 0.5 if j.outcome == "tie" else float((j.outcome == "a") == first)
        rows[other].append((float(diff), y))
    all_diffs = np.array([d for v in rows.values() for d, _ in v])
    scale = float(all_diffs.std()) or 1.0
    out = {}
    for m, v in sorted(rows.items()):
        d = np.tanh(np.array([x for x, _ in v]) / scale)
        y = np.array([t for _, t in v])
        raw = float(y.mean())
        # ties → one positive and one negative row at weight 1/2 each
        X = np.concatenate([d, d])[:, None]
        yy = np.concatenate([np.ones_like(y), np.zeros_like(y)])
        w = np.concatenate([y, 1 - y])
        keep = w > 0
        if len(set(yy[keep])) < 2:
            out[m] = {"winrate": raw, "lc_winrate": raw, "n": len(v)}
            continue
        lr = LogisticRegression(C=1.0, max_iter=2000).fit(X[keep], yy[keep], sample_weight=w[keep])
        out[m] = {"winrate": raw, "lc_winrate": float(1 / (1 + math.exp(-lr.intercept_[0]))),
                  "length_coef": float(lr.coef_[0][0]), "n": len(v)}
    return out


def fold_changes(table, specs: list[FoldSpec]) -> list[dict[str, Any]]:
    out = []
    for s in specs:
        for m in (s.before, s.after, s.reference):
            if m not in table:
                raise FinemedError(f"fold-change: model {m!r} has no judged pairs; check the model names")
        wb, wa = table[s.before][s.reference]["winrate"], table[s.after][s.reference]["winrate"]
        out.append({**s.model_dump(), "winrate_before": wb, "winrate_after": wa,
                    "fold_change": wa / wb if wb else float("inf")})
    return out


def heatmap(table, models: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mat = np.array([[table.get(a, {}).get(b, {}).get("winrate", np.nan) if a != b else np.nan for b in models]
                    for a in models])
    short = [m.split("/")[-1][:28] for m in models]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(models), 0.8 + 0.5 * len(models)))
    im = ax.imshow(mat, cmap="RdYlGn", vmin=0, vmax=1)
    ax.set_xticks(range(len(models)), short, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(models)), short, fontsize=7)
    for i in range(len(models)):
        for k in range(len(models)):
            if not np.isnan(mat[i, k]):
                ax.text(k, i, f"{mat[i, k]:.2f}", ha="center", va="center", fontsize=6)
    ax.set_title("win-rate of row model vs column model (ties = 1/2)", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def compute_winrates(judgments: list[PairJudgment], *, reference: str | None = None, fold: list[FoldSpec] = (),
                     bootstrap: int = 200, seed: int = 0) -> dict[str, Any]:
    table = pair_table(judgments)
    bt = bradley_terry(judgments, bootstrap=bootstrap, seed=seed)
    ranking = sorted(bt, key=lambda m: bt[m]["rank"])
    outcomes = {k: sum(j.outcome == k for j in judgments) for k in ("a", "b", "tie", "invalid")}
    res: dict[str, Any] = {"n_judgments": len(judgments), "outcomes": outcomes, "pairs": table,
                           "overall_winrate": overall_winrates(table), "bradley_terry": bt, "ranking": ranking}
    if reference:
        if reference not in table:
            raise FinemedError(f"reference model {reference!r} has no judged pairs; "
                               f"pick one of {', '.join(sorted(table))}")
        res["reference"] = reference
        res["length_controlled"] = length_controlled(judgments, reference)
    if fold:
        res["fold_change"] = fold_changes(table, list(fold))
    top = ranking[0]
    res["top"] = f"{top} (BT {bt[top]['score']:.0f} [{bt[top]['lo']:.0f}, {bt[top]['hi']:.0f}])"
    return res


class WinrateStageConfig(StageConfig):
    answers: str = Field(description="answers JSONL or builtin:germedbench_patient_text / builtin:germediq ...")
    judge: str = Field("scores:overall", description="URL#MODEL, local:PATH or scores:FIELD")
    lang: str = "de"
    pairs: str = "all"
    reference: str | None = None
    fold: list[FoldSpec] = []
    concurrency: int = Field(8, ge=1)
    max_tokens: int = Field(256, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_prompts: int | None = Field(None, ge=1)
    bootstrap: int = Field(200, ge=0)
    seed: int = 0
    cache: str | None = Field(None, description="SQLite judge cache (default: RUN_DIR/judge_cache.sqlite)")
    engine: Engine = Field("auto", description="a local: judge: auto (vLLM where `make vllm` ran) | hf | vllm")
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)


class WinrateResult(StageResult):
    key_metric: ClassVar[str] = "top"
    top: str
    ranking: list[str]
    n_judgments: int
    outcomes: dict[str, int]
    overall_winrate: dict[str, float]
    bradley_terry: dict[str, dict[str, float]]
    pairs: dict[str, dict[str, dict[str, float]]]
    reference: str | None = None
    length_controlled: dict[str, dict[str, float]] | None = None
    fold_change: list[dict[str, Any]] | None = None
    judge_info: dict[str, Any]
    heatmap: str


@stage("eval.pairwise", aliases=["eval.winrates"])
def run(config: WinrateStageConfig, run_dir: Path) -> WinrateResult:
    """Stage entry: writes ``judgments.jsonl``, ``winrates.json`` and ``winrates_heatmap.png``."""
    run_dir = Path(run_dir)
    rows = load_answers(config.answers)
    cache = Path(config.cache) if config.cache else run_dir / "judge_cache.sqlite"
    judgments, info = run_pairwise(rows, config.judge, lang=config.lang, pairs=config.pairs, cache_path=cache,
                                   concurrency=config.concurrency, max_tokens=config.max_tokens,
                                   timeout_s=config.timeout_s, max_prompts=config.max_prompts,
                                   engine=config.engine, vllm=config.vllm)
    write_answers(run_dir / "judgments.jsonl", [j.model_dump() for j in judgments])
    res = compute_winrates(judgments, reference=config.reference, fold=config.fold, bootstrap=config.bootstrap,
                           seed=config.seed)
    plot = heatmap(res["pairs"], res["ranking"], run_dir / "winrates_heatmap.png")
    result = WinrateResult(**res, judge_info=info, heatmap=str(plot))
    atomic_write_json(run_dir / "winrates.json", result)
    return result


# ------------------------------------------------------------------------------------------------ plan
def planned_pairs(config: WinrateStageConfig, ctx) -> tuple[int, int, str]:
    """(pairs to judge, answer bytes per pair, where the count comes from): counted on the answers where they
    exist now, else from the earlier ``eval.generate`` stage's prompts x models."""
    if readable_now(config.answers):
        rows = load_answers(config.answers)
        if config.max_prompts:
            keep = set(sorted({r.prompt_id for r in rows})[:config.max_prompts])
            rows = [r for r in rows if r.prompt_id in keep]
        triples = make_pairs(rows, config.pairs)
        size = sum(len((a.prompt or b.prompt).encode()) + len(a.answer.encode()) + len(b.answer.encode())
                   for _, a, b in triples)
        return len(triples), size // max(len(triples), 1), "counted on the answers"
    gen = earlier(ctx, config.answers) or {}
    prompts, models = gen.get("prompts", 0), gen.get("models", 0)
    if config.max_prompts:
        prompts = min(prompts, config.max_prompts)
    per_prompt = models * (models - 1) // 2 if config.pairs == "all" else max(models - 1, 0)
    answer_bytes = 4 * gen.get("generated_tokens_max", 0) / max(gen.get("rows", 1), 1)
    return prompts * per_prompt, int(400 + 2 * answer_bytes), f"prompts x models of the stage writing {config.answers}"


@planner("eval.pairwise")
def plan(config: WinrateStageConfig, ctx) -> dict:
    """``finemed plan``: judge calls = pairs x 2 (both orders; unparseable replies add up to one retry each,
    not counted); a local judge's GPU-hours and memory; disk for the judgments and the judge cache."""
    pairs, pair_bytes, source = planned_pairs(config, ctx)
    if config.judge.startswith("scores:"):
        return {"pairs": pairs, "judge_calls": 0, "disk_gib": gib(pairs * JUDGMENT_BYTES),
                **cpu(0.05 * (config.bootstrap + 1)),
                "assumes": f"pointwise scores ({config.judge}): no judge model; pairs {source}; ~50 ms of CPU "
                           f"per Bradley-Terry fit (bootstrap + 1 fits)"}
    calls = 2 * pairs
    est: dict = {"pairs": pairs, "judge_calls": calls, "judge": config.judge,
                 "judge_prompt_tokens": int(calls * (pair_bytes + 600) / 4),
                 "judge_generated_tokens_max": calls * config.max_tokens,
                 "disk_gib": gib(calls * JUDGMENT_BYTES)}
    if config.judge.startswith("local:"):
        cost = inference(config.judge, ctx, tokens=est["judge_prompt_tokens"] + est["judge_generated_tokens_max"],
                         decode_steps=decode_steps(calls, config.concurrency, config.max_tokens))
        est.update({k: cost[k] for k in ("gpu_hours", "memory_gib_per_process", "parameters") if k in cost})
    est["assumes"] = (f"pairs {source}; both orders; 4 bytes/token, 600 bytes of judge instructions per call; "
                      f"every reply runs to max_tokens; "
                      + ("local judge batched by concurrency" if config.judge.startswith("local:")
                         else "the endpoint's GPU time is not counted here"))
    return est

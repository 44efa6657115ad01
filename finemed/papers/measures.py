"""Measurements the paper-findings stages share: the instruction probe of a model dir (cached), an exact McNemar
test on two probe runs, per-prompt failure modes with paired bootstrap CIs, and judge win-rates by role.

Everything reads what earlier stages wrote; the failure modes are recomputed per answer with
:func:`finemed.evaluation.failures.analyse_answer` (the same function and settings as the ``eval.failures``
stage, read from its manifest) because that stage keeps only per-model means and the paired CI needs per-prompt
values.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from finemed.core.artifacts import atomic_write_json, atomic_write_text, read_json, read_manifest
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.runtime import Device, DType, resolve
from finemed.evaluation.answers import load_answers
from finemed.evaluation.failures import analyse_answer, reference_lengths
from finemed.merging.probe import run_probe
from finemed.models.loading import load_causal_lm

log = get_logger(__name__)
FAILURE_METRICS = ("off_lang_sentence_share", "length_ratio")



class ProbeSettings(StageConfig):
    """The probe, bootstrap and device settings the papers' before/after findings stages share."""

    probe_max_new_tokens: int = Field(48, ge=1)
    probe_batch_size: int = Field(25, ge=1)
    probe_limit: int | None = Field(None, ge=1)
    bootstrap: int = Field(1000, ge=0)
    seed: int = 0
    device: Device = "auto"
    dtype: DType = "auto"


def results_doc_field():
    """``results_doc``: a name, not a path (so ``finemed plan`` does not look for it as an input): the findings
    stage also writes ``docs/results/NAME.md``, relative to the working dir (the repo root for ``finemed run``)."""
    return Field(None, pattern=r"^[A-Za-z0-9_.-]+$", description="also write docs/results/NAME.md")


def publish(md: str, results_doc: str | None) -> Path | None:
    """Write a findings stage's ``findings.md`` text, verbatim, to ``docs/results/<results_doc>.md``."""
    if not results_doc:
        return None
    doc = Path("docs") / "results" / f"{results_doc}.md"
    doc.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(doc, md)


def require(path: Path, what: str) -> Path:
    if not Path(path).is_file():
        raise FinemedError(f"{what}: {path} is missing; run the stage that writes it first (or fix the path)")
    return Path(path)


def require_models(models: dict[str, str], roles: tuple[str, ...], kind: str) -> dict[str, str]:
    """``{role: path}`` for every role, or one error naming the missing roles and the mapping to give."""
    missing = [r for r in roles if r not in models]
    if missing:
        shape = ", ".join(f"{r}: PATH" for r in roles)
        raise FinemedError(f"{kind}: models is missing {', '.join(missing)}; give {{{shape}}} as named in the answers")
    return {r: models[r] for r in roles}


def probe_model(model_dir: Path, cache: Path, cfg: Any) -> dict[str, Any]:
    """The instruction probe (:mod:`finemed.merging.probe`) of ``model_dir``, written to ``cache`` once."""
    if cache.is_file():
        return read_json(cache)

    rt = resolve(cfg.device, cfg.dtype)
    model, tok = load_causal_lm(model_dir, runtime=rt)
    res = run_probe(model, tok, max_new_tokens=cfg.probe_max_new_tokens, batch_size=cfg.probe_batch_size,
                    limit=cfg.probe_limit, runtime=rt).model_dump()
    atomic_write_json(cache, res)
    log.info("probe %s: pass rate %.2f", model_dir, res["pass_rate"])
    return res


def verdict_items(run: dict[str, Any], split: str = "test") -> list[dict[str, Any]]:
    """The probe items a verdict may use: the test half where the probe is split (the sweep selects on dev);
    ``split="dev"`` gives the half that selections read."""
    items = run["items"]
    return [i for i in items if i.get("split", "test") == split]


def verdict_rate(run: dict[str, Any], split: str = "test") -> float:
    """The pass rate on :func:`verdict_items` of ``split`` (the whole probe where it is not split)."""
    items = verdict_items(run, split)
    return sum(bool(i["passed"]) for i in items) / len(items) if items else float("nan")


def mcnemar(a: dict[str, Any], b: dict[str, Any], split: str = "test") -> dict[str, Any]:
    """Exact McNemar test on the ``split`` half's probe items both runs answered: only ``a`` passes vs only ``b``."""
    from scipy.stats import binomtest

    pa = {i["id"]: i["passed"] for i in verdict_items(a, split)}
    pb = {i["id"]: i["passed"] for i in verdict_items(b, split)}
    ids = sorted(set(pa) & set(pb))
    only_a = sum(pa[i] and not pb[i] for i in ids)
    only_b = sum(pb[i] and not pa[i] for i in ids)
    n = only_a + only_b
    p = float(binomtest(min(only_a, only_b), n, 0.5).pvalue) if n else 1.0
    return {"items": len(ids), "only_first": only_a, "only_second": only_b, "p": round(p, 4)}


def paired_diff(x: list[float], y: list[float], n: int, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Mean of ``y - x`` over pairs, its (1 - alpha) percentile-bootstrap CI and the two-sided bootstrap p-value
    (twice the share of resampled means on the far side of 0, at least 1/n); the evidence a claim is judged on."""
    d = np.asarray(y, dtype=float) - np.asarray(x, dtype=float)
    if len(d) == 0:
        return {"estimate": None, "lo": None, "hi": None, "p": None, "n": 0}
    if n <= 0 or len(d) == 1 or not d.any():
        return {"estimate": float(d.mean()), "lo": float(d.mean()), "hi": float(d.mean()),
                "p": None if d.any() else 1.0, "n": len(d)}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    p = min(1.0, max(1.0 / n, 2 * min(float((means <= 0).mean()), float((means >= 0).mean()))))
    return {"estimate": float(d.mean()), "lo": float(np.percentile(means, 100 * alpha / 2)),
            "hi": float(np.percentile(means, 100 * (1 - alpha / 2))), "p": p, "n": len(d)}


def probe_items(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[float], list[float]]:
    """The passed flags (0/1) of the test-half probe items both runs answered, in one order."""
    pa = {i["id"]: float(i["passed"]) for i in verdict_items(a)}
    pb = {i["id"]: float(i["passed"]) for i in verdict_items(b)}
    ids = sorted(set(pa) & set(pb))
    return [pa[i] for i in ids], [pb[i] for i in ids]


def paired_bootstrap(x: list[float], y: list[float], n: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``y - x`` over pairs and its 95% percentile-bootstrap CI: :func:`paired_diff` as a triple."""
    d = paired_diff(x, y, n, seed)
    return (float("nan"),) * 3 if not d["n"] else (d["estimate"], d["lo"], d["hi"])


def failure_pairs(failures_dir: Path, models: dict[str, str], bootstrap: int, seed: int = 0,
                  pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Per-model failure means (the ``eval.failures`` stage's table, by role) and, for each role pair (a, b),
    the paired per-prompt difference b - a of each metric in :data:`FAILURE_METRICS` with its bootstrap CI."""

    manifest = read_manifest(failures_dir)
    table = read_json(require(failures_dir / "failures.json", "eval.failures result"))
    if manifest is None:
        raise FinemedError(f"papers: {failures_dir} has no manifest; point failures: at an eval.failures run dir")
    conf = manifest.config
    human = conf.get("human_model", "human")
    rows = load_answers(conf["answers"])
    refs_rows = [r for r in load_answers(conf["references"]) if r.model == human] if conf.get("references") else []
    refs = reference_lengths(rows + refs_rows, human)
    per: dict[str, dict[str, dict[str, Any]]] = {role: {} for role in models}
    role_of = {path: role for role, path in models.items()}
    for r in rows:
        role = role_of.get(r.model)
        if role is None:
            continue
        per[role][r.prompt_id] = analyse_answer(r.answer, conf.get("lang", "de"),
                                                ref_words=refs.get((r.model, r.prompt_id)),
                                                finish_reason=r.finish_reason, min_words=conf.get("min_words", 3),
                                                mixed_min_words=conf.get("mixed_min_words", 12))
    absent = [role for role, path in models.items() if path not in table]
    if absent:
        raise FinemedError(f"papers: {failures_dir}/failures.json has no answers of {', '.join(absent)} "
                           f"({', '.join(models[a] for a in absent)}); the names must match the answers' models")
    out: dict[str, Any] = {"models": {role: table[path] for role, path in models.items()}, "diff": {}}
    for a, b in pairs or list(combinations(models, 2)):
        key = f"{b}-{a}"
        out["diff"][key] = {}
        for metric in FAILURE_METRICS:
            ids = [i for i in per[a] if i in per[b] and per[a][i][metric] is not None
                   and per[b][i][metric] is not None]
            mean, lo, hi = paired_bootstrap([per[a][i][metric] for i in ids], [per[b][i][metric] for i in ids],
                                            bootstrap, seed)
            out["diff"][key][metric] = (None, None, None) if not ids else (round(mean, 4), round(lo, 4),
                                                                           round(hi, 4))
            out["diff"][key][metric + "_n"] = len(ids)
            out["diff"][key][metric + "_p"] = paired_diff([per[a][i][metric] for i in ids],
                                                          [per[b][i][metric] for i in ids], bootstrap, seed)["p"]
        ids = [i for i in per[a] if i in per[b] and (per[a][i]["length_ratio"] or 0) > 0
               and (per[b][i]["length_ratio"] or 0) > 0]
        out["diff"][key]["abs_log_length_ratio"] = paired_diff(
            [abs(math.log(per[a][i]["length_ratio"])) for i in ids],
            [abs(math.log(per[b][i]["length_ratio"])) for i in ids], bootstrap, seed)
    out["per_model_ci"] = {role: {m: paired_bootstrap([0.0] * len(vals), vals, bootstrap, seed) if vals else None
                                  for m in FAILURE_METRICS
                                  for vals in [[v[m] for v in per[role].values() if v[m] is not None]]}
                           for role in models}
    return out


def judge_winrates(judge_dir: Path, models: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``{"b vs a": {winrate, n}}`` for every role pair the judge compared (win-rate of b over a)."""
    res = read_json(require(judge_dir / "metrics.json", "eval.pairwise result"))
    table = res.get("pairs", {})
    out = {}
    for a, b in combinations(models, 2):
        cell = table.get(models[b], {}).get(models[a])
        if cell:
            out[f"{b} vs {a}"] = {"winrate": round(cell["winrate"], 3), "n": cell["n"],
                                  "invalid": cell.get("invalid", 0)}
    out["_judge"] = {"judge": str((read_manifest(judge_dir).config or {}).get("judge")) if read_manifest(judge_dir)
                     else None}
    return out


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return "n/a" if x != x else f"{x:.{digits}f}"
    return str(x)


def fmt_ci(t: tuple | list | None, digits: int = 3) -> str:
    if not t or t[0] is None:
        return "n/a"
    return f"{t[0]:+.{digits}f} [{t[1]:+.{digits}f}, {t[2]:+.{digits}f}]"

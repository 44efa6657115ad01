"""The tokenizer-choice paper's claims as evidence for :mod:`finemed.papers.claims` (pre-registered in the recipe).

Claim ids (:data:`CLAIMS`) and what each is judged on:

- ``no_prediction_sib`` / ``no_prediction_bpb``: pooled Spearman ρ(fertility, score) over (model, language) pairs
  with its bootstrap CI; an equivalence claim ("does not predict" = |ρ| below the registered ``min_effect``).
  SIB-200 is not testable while no model's accuracy clears the majority-class rate of its language (the Wilson
  95% lower bound of accuracy minus that rate, against the registered floor 0): a measure at chance cannot show
  whether anything predicts it; nor while the models' accuracies do not differ beyond sampling noise
  (:func:`sib_differs`): a probe that reads the same bag of words from every model gives rho = 0 by construction;
- ``en_higher_fertility``: fertility of each EN-only tokenizer minus its multilingual twin's on de/fr/it/es;
- ``multi_better_sib`` / ``multi_better_bpb``: the multilingual twin's SIB-200 accuracy gain / bpb drop on
  de/fr/it/es (mean over twin pairs and languages, bootstrap CI);
- ``en_costs_more``: the extra FLOPs an EN-only model needs to reach the held-out bpb its multilingual twin reaches
  on the 5-language set (:mod:`finemed.papers.tokenizer_cost`), median over twin pairs with a bootstrap CI. The
  seconds per word of one timed run each are not judged: timing noise is of the size of the effect;
- ``vocab_3x``: the 5-language vocabulary needed for the EN-only English fertility, as a ratio minus 2 (the
  estimate is the median over EN-only tokenizers, the bounds their minimum and maximum: a range, not a CI).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from finemed.papers import claims as K

CLAIMS = ("no_prediction_sib", "no_prediction_bpb", "en_higher_fertility", "multi_better_sib", "multi_better_bpb",
          "en_costs_more", "vocab_3x")


def wilson_low(acc: float, n: int, z: float = 1.96) -> float:
    """Lower bound of the Wilson score interval of a proportion."""
    if n <= 0:
        return 0.0
    centre = acc + z * z / (2 * n)
    spread = z * math.sqrt(acc * (1 - acc) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def sib_above_chance(rows: list[dict], langs: list[str]) -> float | None:
    """The best (Wilson lower bound of accuracy - majority-class rate) over models and languages."""
    gaps = [wilson_low(r["sib"][lang], int(r.get("sib_n", {}).get(lang, 0))) - r["sib_majority"].get(lang, 0.0)
            for r in rows for lang in langs if r["sib"].get(lang) is not None]
    return max(gaps) if gaps else None


def sib_differs(rows: list[dict], langs: list[str], alpha: float) -> tuple[bool, str]:
    """(testable, why not): whether the models' SIB-200 accuracies differ beyond sampling noise in some language
    (scipy's chi-square test of homogeneity of correct/wrong counts across models, Holm over languages). Where they
    do not, a correlation with fertility is 0 by construction, so "does not predict" could not fail."""
    from scipy.stats import chi2_contingency

    pvalues = {}
    for lang in langs:
        table = [[round(r["sib"][lang] * n), n - round(r["sib"][lang] * n)] for r in rows
                 if r["sib"].get(lang) is not None and (n := int(r.get("sib_n", {}).get(lang, 0))) > 0]
        if len(table) >= 2 and all(sum(col) > 0 for col in zip(*table)):
            pvalues[lang] = float(chi2_contingency(table).pvalue)
    if not pvalues:
        return False, "no language has SIB-200 counts from two models"
    adjusted = K.holm(pvalues)
    lang = min(adjusted, key=adjusted.get)
    return adjusted[lang] < alpha, (f"the models' SIB-200 accuracies do not differ beyond sampling noise "
                                    f"(chi-square homogeneity across {len(rows)} models, smallest Holm-adjusted "
                                    f"p = {adjusted[lang]:.3f} in {lang})")


def _rho(c: dict | None, what: str) -> K.Evidence:
    if not c or any(math.isnan(c[k]) for k in ("rho", "lo", "hi")):
        return K.Evidence(estimate=None, lo=None, hi=None, detail=f"{what}: ρ undefined (a constant series)")
    return K.Evidence(estimate=c["rho"], lo=c["lo"], hi=c["hi"],
                      detail=f"{what}: pooled ρ(fertility) = {c['rho']:+.2f} [{c['lo']:+.2f}, {c['hi']:+.2f}] "
                             f"(n = {c['n']})")


def _twin_diffs(rows: list[dict], cfg: Any, key: str, sign: int) -> list[float]:
    others = [lang for lang in cfg.langs if lang != cfg.ref_lang]
    multi = {(r["algorithm"], r["library"], r["vocab"]): r for r in rows if r["corpus"] == cfg.multi_corpus}
    out = []
    for r in rows:
        twin = multi.get((r["algorithm"], r["library"], r["vocab"])) if r["corpus"] == cfg.en_corpus else None
        for lang in others if twin else []:
            a, b = r[key].get(lang), twin[key].get(lang)
            if a is not None and b is not None:
                out.append(sign * (b - a))
    return out


def _ci_ev(diffs: list[float], cfg: Any, what: str, stat: str = "mean", **kw) -> K.Evidence:
    if len(diffs) < 2:
        return K.Evidence(estimate=None, lo=None, hi=None, detail=f"{what}: fewer than 2 twin pairs", **kw)
    ci = K.bootstrap_ci(diffs, stat=stat, n_boot=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    return K.Evidence(estimate=ci["estimate"], lo=ci["lo"], hi=ci["hi"],
                      detail=f"{what} = {ci['estimate']:+.3f} [{ci['lo']:+.3f}, {ci['hi']:+.3f}] ({ci['n']} pairs)",
                      **kw)


def evidence(cfg: Any, rows: list[dict], corrs: list[dict], costs: list[dict],
             match: list[dict]) -> dict[str, K.Evidence]:
    """What each pre-registered tokenizer-choice claim is judged on."""
    pooled = {(c["metric"], c["score"]): c for c in corrs if c["scope"] == "pooled"}
    best = sib_above_chance(rows, cfg.langs)
    sib_ok, sib_why = K.at_floor(best, cfg.claims["no_prediction_sib"].floor)
    sib_why = f"SIB-200 accuracy is at chance: {sib_why}"
    if sib_ok:
        sib_ok, sib_why = sib_differs(rows, cfg.langs, cfg.claims["no_prediction_sib"].alpha)
    ev = {"no_prediction_sib": _rho(pooled.get(("fertility", "sib")), "SIB-200 accuracy"),
          "no_prediction_bpb": _rho(pooled.get(("fertility", "bpb")), "held-out bpb")}
    ev["no_prediction_sib"] = ev["no_prediction_sib"].model_copy(
        update={"testable": sib_ok, "why_not": sib_why})
    ev["en_higher_fertility"] = _ci_ev(_twin_diffs(rows, cfg, "fertility", -1), cfg,
                                       "fertility EN-only − multilingual on de/fr/it/es")
    ev["multi_better_sib"] = _ci_ev(_twin_diffs(rows, cfg, "sib", 1), cfg,
                                    "SIB-200 accuracy multilingual − EN-only on de/fr/it/es", testable=sib_ok,
                                    why_not=sib_why)
    ev["multi_better_bpb"] = _ci_ev(_twin_diffs(rows, cfg, "bpb", -1), cfg,
                                    "bpb drop multilingual vs EN-only on de/fr/it/es")
    ev["en_costs_more"] = _ci_ev([c["measured"] for c in costs], cfg,
                                 "extra FLOPs of EN-only to the same held-out bpb on the 5-language set, "
                                 "median over twin pairs", stat="median")
    ratios = [m["ratio"] for m in match if m["ratio"]]
    ev["vocab_3x"] = K.Evidence(
        estimate=statistics.median(ratios) - 2 if ratios else None, lo=min(ratios) - 2 if ratios else None,
        hi=max(ratios) - 2 if ratios else None,
        detail=(f"5-language vocab / EN-only vocab {min(ratios):.1f}x to {max(ratios):.1f}x "
                f"({len(ratios)} EN-only tokenizers; effect = ratio - 2)") if ratios else "no ratio")
    return ev

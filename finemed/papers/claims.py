"""Pre-registered claims and their verdicts, shared by the ``papers.*`` findings stages.

A paper recipe states each claim before anything runs, in its findings stage's ``claims:`` mapping (claim id ->
:class:`ClaimSpec`): the measure, the test, alpha, the direction, the minimum effect, the correction for multiple
comparisons and, where the measure has one, its floor (the chance level). The findings stage computes each
claim's effect with its CI (and p-value where the test gives one), applies Holm's correction within each family,
and :func:`decide` turns that into one of four words:

- **holds**: the CI lies on the claimed side (and the Holm-adjusted p < alpha where a p-value is given);
- **does not hold**: the CI excludes the claimed effect;
- **no evidence either way**: the CI spans both the claimed effect and its absence;
- **not testable here**: the measure sits at its floor (e.g. accuracy at chance), so no outcome could tell.

Directions (``e`` the effect, ``m`` = ``min_effect`` >= 0, ``[lo, hi]`` its CI):

======================= =============================== ====================================================
direction               holds                           does not hold
======================= =============================== ====================================================
``greater``             lo > 0 and e >= m               hi < m (m > 0), or hi < 0 (m = 0)
``less``                hi < 0 and e <= -m              lo > -m (m > 0), or lo > 0 (m = 0)
``not_less`` (non-inf.) lo > -m                         hi < -m
``none`` (equivalence)  -m < lo and hi < m              the CI lies wholly outside [-m, m], or excludes 0 if m = 0
======================= =============================== ====================================================

With ``m = 0`` an equivalence claim can never hold: a CI that includes 0 is no evidence of no effect.

Written here because statsmodels' ``multipletests`` is not a dependency and the four-word rule is this project's
reporting convention, not a library's; Holm's step-down adjustment is six lines.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import statistics
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
NO_EVIDENCE = "no evidence either way"
NOT_TESTABLE = "not testable here"
WORDS = (HOLDS, DOES_NOT_HOLD, NO_EVIDENCE, NOT_TESTABLE)


class ClaimSpec(BaseModel):
    """One pre-registered claim."""

    model_config = ConfigDict(extra="forbid")

    statement: str = Field(description="the paper's claim in words")
    measure: str = Field(description="what is measured, e.g. 'probe pass rate, merge - CPT, paired items'")
    test: Literal["mcnemar", "paired_bootstrap", "bootstrap_ci", "spearman_bootstrap", "point"]
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    direction: Literal["greater", "less", "not_less", "none"]
    min_effect: float = Field(0.0, ge=0.0, description="the smallest effect that counts, in the measure's units")
    correction: Literal["none", "holm"] = "none"
    family: str | None = Field(None, description="claims that share a family are Holm-corrected together")
    floor: float | None = Field(None, description="the measure's chance level; at or below it: not testable")


class Evidence(BaseModel):
    """What a findings stage measured for one claim."""

    estimate: float | None
    lo: float | None
    hi: float | None
    p: float | None = None  # raw p-value, where the test gives one
    testable: bool = True
    why_not: str = ""  # when not testable: why (one phrase)
    detail: str = ""  # the numbers, as the findings page shows them


class Verdict(BaseModel):
    verdict: Literal["holds", "does not hold", "no evidence either way", "not testable here"]
    statement: str
    detail: str
    p_adjusted: float | None = None

    def line(self) -> str:
        return f"{self.verdict}: {self.detail}" if self.detail else self.verdict


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (monotone, capped at 1)."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    out: dict[str, float] = {}
    running = 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * pvalues[key]))
        out[key] = running
    return out


def decide(spec: ClaimSpec, ev: Evidence, p_adjusted: float | None = None) -> str:
    """The verdict word for one claim (see the module docstring's table)."""
    if not ev.testable:
        return NOT_TESTABLE
    if ev.estimate is None or ev.lo is None or ev.hi is None or any(map(math.isnan, (ev.estimate, ev.lo, ev.hi))):
        return NO_EVIDENCE
    e, lo, hi, m = ev.estimate, ev.lo, ev.hi, spec.min_effect
    p = p_adjusted if p_adjusted is not None else ev.p
    significant = p is None or p < spec.alpha
    if spec.direction == "less":
        e, lo, hi = -e, -hi, -lo
    if spec.direction in ("greater", "less"):
        if lo > 0 and e >= m and significant:
            return HOLDS
        if hi < m if m > 0 else hi < 0:
            return DOES_NOT_HOLD
        return NO_EVIDENCE
    if spec.direction == "not_less":
        if lo > -m:
            return HOLDS
        return DOES_NOT_HOLD if hi < -m else NO_EVIDENCE
    if m > 0 and -m < lo and hi < m:
        return HOLDS
    if (m > 0 and (lo >= m or hi <= -m)) or (m == 0 and (lo > 0 or hi < 0)):
        return DOES_NOT_HOLD
    return NO_EVIDENCE


def bootstrap_ci(values: list[float], *, stat: Literal["mean", "median"] = "mean", n_boot: int,
                 confidence: float, seed: int) -> dict:
    """``stat`` (mean or median; +inf allowed for the median) of ``values`` and its percentile bootstrap CI:
    ``{"estimate", "lo", "hi", "n"}``, the evidence a ``bootstrap_ci`` claim is judged on."""
    f = statistics.fmean if stat == "mean" else statistics.median
    rng = random.Random(seed)
    boots = sorted(f([rng.choice(values) for _ in values]) for _ in range(n_boot))
    alpha = (1 - confidence) / 2
    return {"estimate": f(values), "lo": boots[int(alpha * (n_boot - 1))],
            "hi": boots[int((1 - alpha) * (n_boot - 1))], "n": len(values)}


def at_floor(best_lower_bound: float | None, floor: float | None) -> tuple[bool, str]:
    """(testable, why not): a measure is testable only when some model's CI lower bound clears its floor."""
    if floor is None:
        return True, ""
    if best_lower_bound is None or best_lower_bound <= floor:
        shown = "none" if best_lower_bound is None else f"{best_lower_bound:.3f}"
        return False, f"the measure is at its floor: no model's CI lower bound ({shown}) clears chance {floor:g}"
    return True, ""


def judge_all(specs: dict[str, ClaimSpec], evidence: dict[str, Evidence]) -> dict[str, Verdict]:
    """Holm within each family, then :func:`decide` for every claim; the order of ``specs`` is kept."""
    adjusted: dict[str, float] = {}
    families: dict[str, dict[str, float]] = {}
    for cid, spec in specs.items():
        ev = evidence[cid]
        if spec.correction == "holm" and ev.p is not None and ev.testable:
            families.setdefault(spec.family or cid, {})[cid] = ev.p
    for fam in families.values():
        adjusted.update(holm(fam))
    out = {}
    for cid, spec in specs.items():
        ev = evidence[cid]
        word = decide(spec, ev, adjusted.get(cid))
        detail = ev.why_not if word == NOT_TESTABLE else ev.detail
        if cid in adjusted:
            detail += f"; Holm-adjusted p = {adjusted[cid]:.3f} (family {spec.family or cid})"
        out[cid] = Verdict(verdict=word, statement=spec.statement, detail=detail, p_adjusted=adjusted.get(cid))
    return out


def require_ids(specs: dict[str, ClaimSpec], known: tuple[str, ...], kind: str) -> None:
    """The recipe must pre-register exactly the claims this findings stage can measure (a ValueError, so a config
    validator reports it with its place, before anything runs)."""
    missing, unknown = [k for k in known if k not in specs], [k for k in specs if k not in known]
    if missing or unknown:
        raise ValueError(f"{kind}: claims must name exactly {', '.join(known)}; "
                          + (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}")
                          + " (state them in the recipe's findings stage under claims:)")


def claims_hash(specs: dict[str, ClaimSpec]) -> str:
    """sha256 of the claims as registered (canonical JSON), recorded in the findings' result and manifest."""
    blob = json.dumps({k: v.model_dump() for k, v in specs.items()}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def table(verdicts: dict[str, Verdict], specs: dict[str, ClaimSpec]) -> list[str]:
    """Markdown lines: the pre-registered rule and the verdict of each claim."""
    lines = ["| claim | pre-registered rule | verdict | numbers |", "|---|---|---|---|"]
    for cid, v in verdicts.items():
        s = specs[cid]
        rule = (f"{s.test}, {s.direction}, min effect {s.min_effect:g}, alpha {s.alpha:g}"
                + (f", Holm ({s.family or cid})" if s.correction == "holm" else "")
                + (f", floor {s.floor:g}" if s.floor is not None else ""))
        lines.append(f"| {v.statement} | {rule} | **{v.verdict}** | {v.detail} |")
    return lines

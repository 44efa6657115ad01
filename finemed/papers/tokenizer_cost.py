"""The measured extra training cost of a tokenizer: the compute its model needs to reach the held-out bpb that its
twin reaches, read off both models' learning curves.

The paper's cost is extra compute for the same text. Timing one run per model puts timing noise at the size of
the effect, and a fertility ratio is the prediction itself, so the measure here is independent of both:
``train.cpt`` scores a held-out set (``cost_set``: the 5-language Debian held-out split) before training, every
``eval_steps`` (``log_history.json``) and after training. For an EN-only tokenizer and its multilingual twin (same
algorithm, library and vocabulary, so the same FLOPs per token):

- target = the worse of the two final bpbs;
- the better model's compute to reach it = the first crossing of its curve, linear between eval points (the worse
  model needed its whole run);
- extra cost of the EN-only tokenizer = EN-only FLOPs to the target / multilingual FLOPs to the target − 1
  (negative when the EN-only model gets there first; unbounded, +inf, when the multilingual model is at the target
  already at initialisation: no amount of the EN-only model's training was worth anything on this set).

The claim is judged on the median over twin pairs with a bootstrap CI
(:func:`finemed.papers.claims.bootstrap_ci`): an unbounded pair is just a large value to a median, where it would
swamp a mean.

A point in the middle of a cosine schedule sits above what a schedule ending there would reach, so the better
model's compute to the target is overestimated: the measured cost is biased towards 0, on either side.
Hand-written: reading a crossing off two logged curves is a few lines, and no library knows these run dirs.
"""

from __future__ import annotations

import math
from pathlib import Path

from finemed.core.artifacts import read_json
from finemed.core.config import FinemedError


def bpb_curve(train_dir: Path, set_name: str) -> list[tuple[int, float]]:
    """(step, held-out bpb of ``set_name``) of one ``train.cpt`` run: before, every ``eval_steps``, after."""
    train_dir = Path(train_dir)
    metrics = read_json(train_dir / "metrics.json")
    before = read_json(train_dir / "bpb_before.json") if (train_dir / "bpb_before.json").is_file() else {}
    history = read_json(train_dir / "log_history.json") if (train_dir / "log_history.json").is_file() else []
    key = f"bpb_{set_name}"
    points = {0: before.get(set_name)} if set_name in before else {}
    points.update({int(h["step"]): float(h[key]) for h in history if key in h and "step" in h})
    if set_name in metrics.get("bpb_after", {}):
        points[int(metrics["steps"])] = float(metrics["bpb_after"][set_name])
    if len(points) < 2:
        raise FinemedError(f"papers.tokenizer_choice: {train_dir} has no learning curve on held-out set "
                           f"{set_name!r} (found {len(points)} point(s)); give its train.cpt stage "
                           f"general_eval: {{{set_name}: ...}} and eval_steps > 0, then rerun it")
    return sorted(points.items())


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    """The first (fractional) step at which ``curve`` falls to ``target`` or below, linear between points."""
    if curve[0][1] <= target:
        return float(curve[0][0])
    for (s0, b0), (s1, b1) in zip(curve, curve[1:]):
        if b1 <= target:
            return s0 + (s1 - s0) * (b0 - target) / (b0 - b1)
    return None


def extra_cost_to_same_bpb(en: list[tuple[int, float]], multi: list[tuple[int, float]],
                           en_flops_per_step: float, multi_flops_per_step: float) -> dict:
    """EN-only FLOPs / multilingual FLOPs to the worse final bpb of the two, − 1 (see the module docstring)."""
    en_final, multi_final = en[-1], multi[-1]
    target = max(en_final[1], multi_final[1])
    en_steps = steps_to_reach(en, target) if en_final[1] < target else float(en_final[0])
    multi_steps = steps_to_reach(multi, target) if multi_final[1] < target else float(multi_final[0])
    en_flops, multi_flops = en_steps * en_flops_per_step, multi_steps * multi_flops_per_step
    cost = en_flops / multi_flops - 1 if multi_flops > 0 else math.inf
    return {"target_bpb": target, "en_steps": en_steps, "multi_steps": multi_steps, "measured": cost}


def fmt_cost(cost: float) -> str:
    """A cost in percent; +inf as 'unbounded'."""
    return "unbounded" if math.isinf(cost) else f"{100 * cost:+.1f}%"

"""Train until held-out bpb plateaus: a stated stopping rule, evaluated by a Trainer callback.

The rule (:func:`plateaued`): every ``eval_every`` steps the held-out bpb is scored; at step s (once s >=
``min_steps``) training stops when the relative change of bpb since step ``s - window * s`` (the latest scored step
at or before it) is below ``min_change``: ``(bpb_then - bpb_now) / bpb_then < min_change``. A rise counts as no
improvement, so it stops too. ``steps`` of the stage stays the ceiling. With ``window: 0.2, min_change: 0.01``:
"less than 1% change over the last 20% of steps".

transformers' ``EarlyStoppingCallback`` stops after ``patience`` evaluations without a better metric from the
Trainer's own ``evaluate`` (the training loss on an eval set, with ``load_best_model_at_end``); the rule here is a
relative change over a share of the steps, on finemed's bits-per-byte of held-out documents, hence this small callback.
Every rank scores through the prepared model (FSDP shards take part in the forward), so all ranks stop together.
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, Field


class PlateauRule(BaseModel):
    """Stop when held-out bpb changed by less than ``min_change`` (relative) over the last ``window`` of steps."""

    eval_every: int = Field(20, ge=1, description="steps between held-out bpb scores")
    window: float = Field(0.2, gt=0.0, lt=1.0, description="the last share of steps the change is measured over")
    min_change: float = Field(0.01, ge=0.0, description="relative bpb improvement below which training stops")
    min_steps: int = Field(0, ge=0, description="never stop before this step")

    def describe(self) -> str:
        return (f"stop when held-out bpb improves by < {self.min_change:.1%} (relative) over the last "
                f"{self.window:.0%} of steps, scored every {self.eval_every} steps, not before step {self.min_steps}")


def window_change(history: list[tuple[int, float]], rule: PlateauRule) -> float | None:
    """The relative bpb improvement of the last entry of ``history`` ((step, bpb) in step order) since the latest
    scored step at or before ``step - window * step``: what the rule compares with ``min_change``. None when no
    scored step is that early."""
    if not history:
        return None
    step, now = history[-1]
    then = [v for s, v in history[:-1] if s <= step - rule.window * step]
    return (then[-1] - now) / then[-1] if then else None


def plateaued(history: list[tuple[int, float]], rule: PlateauRule) -> bool:
    """Whether the last entry of ``history`` ((step, bpb) in step order) meets the rule."""
    if not history or history[-1][0] < rule.min_steps:
        return False
    change = window_change(history, rule)
    return change is not None and change < rule.min_change


def plateau_callback(score: Callable[[Any], float], rule: PlateauRule, initial: float | None = None):
    """A ``TrainerCallback`` that scores ``score(model)`` every ``rule.eval_every`` steps and stops training by
    :func:`plateaued`. ``initial`` is the bpb before training (step 0). Its ``history`` and ``stopped_at`` are
    read after ``train()``."""
    from transformers import TrainerCallback

    class PlateauStop(TrainerCallback):
        def __init__(self):
            self.history: list[tuple[int, float]] = [] if initial is None else [(0, float(initial))]
            self.stopped_at: int | None = None

        def on_step_end(self, args, state, control, model=None, **kw):
            step = state.global_step
            if step % rule.eval_every or step >= state.max_steps:
                return
            was_training = model.training
            model.eval()
            self.history.append((step, float(score(model))))
            model.train(was_training)
            if plateaued(self.history, rule):
                self.stopped_at = step
                control.should_training_stop = True

    return PlateauStop()

"""The plateau stopping rule (finemed.core.plateau) on crafted bpb histories."""

import pytest

from finemed.core.plateau import PlateauRule, plateaued

RULE = PlateauRule(eval_every=10, window=0.2, min_change=0.01)


@pytest.mark.parametrize("history, stops", [
    ([], False),
    ([(0, 3.0)], False),                                    # nothing to compare with yet
    ([(0, 3.0), (10, 2.5)], False),                         # step 10: window at 8, compares with step 0: 17% better
    ([(0, 3.0), (40, 2.0), (50, 1.995)], True),             # since step 40 (<= 50 - 10): 0.25% < 1%: stop
    ([(0, 3.0), (40, 2.0), (50, 1.90)], False),             # 5% better over the window: go on
    ([(0, 3.0), (40, 2.0), (50, 2.10)], True),              # worse over the window: stop
    ([(0, 3.0), (40, 2.0), (45, 1.0), (50, 1.995)], True),  # compares with the latest step at or before 40
    ([(0, 3.0), (100, 2.0), (110, 1.99)], False),           # window at 88: compares with step 0 (-34%)
    ([(0, 3.0), (80, 2.0), (90, 1.99), (100, 1.985)], True),  # window at 80: 2.0 -> 1.985 is 0.75%
])
def test_rule_on_crafted_histories(history, stops):
    assert plateaued(history, RULE) is stops


def test_min_steps_and_min_change():
    flat = [(0, 2.0), (10, 2.0), (20, 2.0)]
    assert plateaued(flat, RULE)
    assert not plateaued(flat, RULE.model_copy(update={"min_steps": 30}))
    assert not plateaued([(0, 2.0), (20, 1.99)], RULE.model_copy(update={"min_change": 0.001}))  # 0.5% >= 0.1%
    assert "< 1.0% (relative) over the last 20% of steps" in RULE.describe()

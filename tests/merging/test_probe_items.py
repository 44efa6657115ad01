"""The instruction probe's items and their fixed dev/test split: disjoint, stable, big enough for a 0.1 drop."""

from __future__ import annotations

import math

from finemed.core.texts import heldout_score
from finemed.merging.probe import score
from finemed.merging.probe_items import instructions, split_of


def _mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p (binomial on the b + c discordant pairs), written out here as the reference."""
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n) if n else 1.0


def test_split_is_disjoint_covering_and_by_task():
    dev, test, every = instructions("dev"), instructions("test"), instructions()
    assert len(every) == 128 and len({i.id for i in every}) == 128
    assert (len(dev), len(test)) == (62, 66)
    assert not {i.id for i in dev} & {i.id for i in test}
    assert {i.id for i in dev} | {i.id for i in test} == {i.id for i in every}
    for half, name in ((dev, "dev"), (test, "test")):
        assert {i.split for i in half} == {name}
        assert sum(i.lang == "de" for i in half) == len(half) // 2  # both languages of a task on one side
        tasks = {i.task for i in half}
        assert {i.id for i in half} == {f"{t}.{lang}" for t in tasks for lang in ("de", "en")}


def test_split_is_stable_and_follows_the_stated_hash():
    # pinned: a change of the rule, the salt or the task ids moves these
    assert [i.id for i in instructions("test")][:6] == ["hypertension_30w.de", "hypertension_30w.en", "water_yes_no.de",
                                                        "water_yes_no.en", "weather_sentence.de", "weather_sentence.en"]
    assert [i.id for i in instructions("dev")][:4] == ["flu_bullets.de", "flu_bullets.en", "capital_word.de",
                                                       "capital_word.en"]
    for ins in instructions():
        expected = "test" if heldout_score("probe:" + ins.task, 0) < 0.5 else "dev"
        assert ins.split == expected == split_of(ins.id) == split_of(ins.task)
    assert [i.id for i in instructions("test")] == [i.id for i in instructions("test")]  # same order every call


def test_test_half_can_show_a_drop_of_a_tenth_with_mcnemar():
    n = len(instructions("test"))
    need = math.ceil(0.1 * n)  # a 0.1 drop: b - c >= 0.1 n discordant pairs
    assert _mcnemar_p(need, 0) < 0.05 and _mcnemar_p(need + 1, 1) < 0.05
    # the bound the docstring states: below 60 items a drop of 0.1 cannot reach p < 0.05 even with c = 0
    assert _mcnemar_p(6, 0) < 0.05 < _mcnemar_p(5, 0)
    assert _mcnemar_p(math.ceil(0.1 * 25), 0) > 0.05  # half of the old 50-item probe could not show it


def test_score_keeps_the_halves_apart():
    items = [i for i in instructions() if i.task in ("capital_word", "water_yes_no")]  # in task order
    assert [i.split for i in items] == ["test", "test", "dev", "dev"]
    res = score(items, [("Ja", True), ("Yes", True), ("Berlin", True), ("The capital is Berlin.", True)])
    assert [s.split for s in res.items] == ["test", "test", "dev", "dev"]
    assert res.splits["test"].pass_rate == 1.0 and res.splits["test"].n == 2
    assert res.splits["dev"].pass_rate == 0.5 and res.splits["dev"].by_lang == {"de": 1.0, "en": 0.0}
    assert res.pass_rate == 0.75 and "probe:" in res.split_rule

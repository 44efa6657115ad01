"""The four-word verdict rule and Holm's correction, on crafted evidence: every path of :func:`decide`."""

from __future__ import annotations

import pytest

from finemed.papers.claims import (
    DOES_NOT_HOLD,
    HOLDS,
    NO_EVIDENCE,
    NOT_TESTABLE,
    ClaimSpec,
    Evidence,
    at_floor,
    claims_hash,
    decide,
    holm,
    judge_all,
    require_ids,
)


def spec(direction, m=0.0, **kw) -> ClaimSpec:
    return ClaimSpec(statement="s", measure="m", test=kw.pop("test", "paired_bootstrap"), direction=direction,
                     min_effect=m, **kw)


def ev(e, lo, hi, p=None, **kw) -> Evidence:
    return Evidence(estimate=e, lo=lo, hi=hi, p=p, **kw)


@pytest.mark.parametrize("direction, m, evidence, word", [
    # greater: the CI above 0 and the estimate at least the minimum effect
    ("greater", 0.0, ev(0.2, 0.05, 0.35), HOLDS),
    ("greater", 0.1, ev(0.2, 0.05, 0.35), HOLDS),
    ("greater", 0.1, ev(0.05, 0.01, 0.2), NO_EVIDENCE),     # significant but below the minimum effect, CI reaches it
    ("greater", 0.1, ev(0.04, 0.01, 0.08), DOES_NOT_HOLD),  # the CI excludes the claimed size
    ("greater", 0.0, ev(-0.2, -0.35, -0.05), DOES_NOT_HOLD),
    ("greater", 0.0, ev(0.1, -0.05, 0.25), NO_EVIDENCE),    # spans 0 and the effect
    # less mirrors greater
    ("less", 0.0, ev(-0.2, -0.35, -0.05), HOLDS),
    ("less", 0.1, ev(-0.04, -0.08, -0.01), DOES_NOT_HOLD),
    ("less", 0.0, ev(0.2, 0.05, 0.35), DOES_NOT_HOLD),
    ("less", 0.0, ev(-0.1, -0.25, 0.05), NO_EVIDENCE),
    # non-inferiority with a margin
    ("not_less", 0.1, ev(-0.02, -0.08, 0.04), HOLDS),
    ("not_less", 0.1, ev(-0.3, -0.4, -0.2), DOES_NOT_HOLD),
    ("not_less", 0.1, ev(-0.1, -0.2, 0.0), NO_EVIDENCE),
    # equivalence: only with a margin can "no effect" hold
    ("none", 0.2, ev(0.0, -0.1, 0.1), HOLDS),
    ("none", 0.2, ev(0.5, 0.3, 0.7), DOES_NOT_HOLD),
    ("none", 0.2, ev(0.1, -0.1, 0.3), NO_EVIDENCE),
    ("none", 0.0, ev(0.0, -0.1, 0.1), NO_EVIDENCE),         # a CI holding 0 is no evidence of no effect
    ("none", 0.0, ev(0.3, 0.1, 0.5), DOES_NOT_HOLD),
])
def test_decide(direction, m, evidence, word):
    assert decide(spec(direction, m), evidence) == word


def test_missing_or_nan_values_are_no_evidence_and_the_floor_is_not_testable():
    assert decide(spec("greater"), ev(None, None, None)) == NO_EVIDENCE
    assert decide(spec("greater"), ev(float("nan"), 0.1, 0.2)) == NO_EVIDENCE
    assert decide(spec("none", 0.2), ev(0.0, -0.1, 0.1, testable=False, why_not="at chance")) == NOT_TESTABLE


def test_a_p_value_must_clear_alpha_for_holds():
    s = spec("greater", test="mcnemar")
    assert decide(s, ev(0.2, 0.05, 0.35, p=0.01)) == HOLDS
    assert decide(s, ev(0.2, 0.05, 0.35, p=0.2)) == NO_EVIDENCE
    assert decide(s, ev(0.2, 0.05, 0.35, p=0.01), p_adjusted=0.06) == NO_EVIDENCE


def test_holm_matches_hand_computed_values():
    # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); monotone step-down
    assert holm({"a": 0.04, "b": 0.01, "c": 0.02}) == pytest.approx({"b": 0.03, "c": 0.04, "a": 0.04})
    # the running maximum keeps it monotone: 0.012*4=0.048, 0.013*3=0.039 -> 0.048, 0.2*2=0.4, 0.5*1=0.5
    assert holm({"a": 0.012, "b": 0.013, "c": 0.2, "d": 0.5}) == pytest.approx(
        {"a": 0.048, "b": 0.048, "c": 0.4, "d": 0.5})
    assert holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}


def test_judge_all_corrects_within_a_family_only():
    specs = {"t0.3": spec("greater", correction="holm", family="sweep", test="mcnemar"),
             "t0.5": spec("greater", correction="holm", family="sweep", test="mcnemar"),
             "alone": spec("greater", test="mcnemar")}
    evidence = {"t0.3": ev(0.2, 0.05, 0.3, p=0.03, detail="a"), "t0.5": ev(0.2, 0.05, 0.3, p=0.02, detail="b"),
                "alone": ev(0.2, 0.05, 0.3, p=0.03, detail="c")}
    out = judge_all(specs, evidence)
    assert out["t0.5"].p_adjusted == pytest.approx(0.04) and out["t0.5"].verdict == HOLDS
    assert out["t0.3"].p_adjusted == pytest.approx(0.04) and out["t0.3"].verdict == HOLDS
    assert out["alone"].p_adjusted is None and out["alone"].verdict == HOLDS
    evidence["t0.3"] = ev(0.2, 0.05, 0.3, p=0.04)
    evidence["t0.5"] = ev(0.2, 0.05, 0.3, p=0.03)
    out = judge_all(specs, evidence)  # 0.03 x 2 = 0.06 > 0.05: the uncorrected "holds" is gone
    assert {out["t0.3"].verdict, out["t0.5"].verdict} == {NO_EVIDENCE}
    assert "Holm-adjusted p = 0.060" in out["t0.5"].line()


def test_at_floor():
    assert at_floor(0.31, 0.25) == (True, "")
    testable, why = at_floor(0.22, 0.25)
    assert not testable and "chance 0.25" in why and "0.220" in why
    assert at_floor(None, None) == (True, "")
    assert at_floor(None, 0.25)[0] is False


def test_ids_must_match_and_the_hash_follows_the_rule():
    specs = {"a": spec("greater"), "b": spec("less")}
    require_ids(specs, ("a", "b"), "papers.x")
    with pytest.raises(ValueError, match="missing c"):
        require_ids(specs, ("a", "b", "c"), "papers.x")
    with pytest.raises(ValueError, match="unknown b"):
        require_ids(specs, ("a",), "papers.x")
    h = claims_hash(specs)
    assert len(h) == 16 and h == claims_hash(dict(specs))
    assert h != claims_hash({"a": spec("greater", 0.1), "b": spec("less")})

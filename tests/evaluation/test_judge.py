"""Pairwise judge: verdict parsing, both orders, invalid counting, cache, and faults on a real local server."""

import json

import pytest
from eval_servers import length_judge

from finemed.evaluation.answers import AnswerRow
from finemed.evaluation.judge import combine, make_pairs, parse_verdict, run_pairwise
from finemed.evaluation.winrate import compute_winrates


@pytest.mark.parametrize("text,want", [
    ("Begründung ... [[A]]", "A"), ("[[ b ]]", "B"), ("[[C]]", "tie"), ("[[Unentschieden]]", "tie"),
    ("Verdict: B", "B"), ("Urteil: **A**", "A"), ("A", "A"), (" tie. ", "tie"),
    ("[[A]] or maybe [[B]]", None), ("Both are fine.", None), ("", None), (None, None),
    ("Antwort A ist besser als Antwort B", None),  # no verdict format: never guessed
    ("[[A]] ... final: [[A]]", "A"),
])
def test_parse_verdict(text, want):
    assert parse_verdict(text) == want


def test_combine_orders():
    assert combine("A", "B") == "a"        # a first wins, then b first loses → a
    assert combine("B", "A") == "b"
    assert combine("A", "A") == "tie"      # position bias → inconsistent → tie
    assert combine("tie", "tie") == "tie"
    assert combine("A", None) == "invalid" and combine(None, None) == "invalid"


def rows():
    """3 models × 2 prompts; 'gut' counts decide the scripted judge: m_good > m_mid > m_bad."""
    out = []
    for p in ("p1", "p2"):
        for m, ans in (("m_good", "gut gut gut"), ("m_mid", "gut eher"), ("m_bad", "schlecht")):
            out.append(AnswerRow(model=m, prompt_id=p, prompt=f"Frage {p}", answer=f"{ans} {p}"))
    return out


def test_pairs_and_vs_filter():
    assert len(make_pairs(rows())) == 6
    assert len(make_pairs(rows(), "vs:m_bad")) == 4


def test_pairwise_end_to_end_and_cache(fault_server, tmp_path):
    cache = tmp_path / "judge.sqlite"
    j, info = run_pairwise(rows(), f"{fault_server.base}#judge", cache_path=cache, concurrency=4, backoff_s=0.01)
    assert info["client"]["calls"] == 12 and fault_server.requests == 12
    res = compute_winrates(j, bootstrap=20)
    assert res["ranking"] == ["m_good", "m_mid", "m_bad"]
    assert res["pairs"]["m_good"]["m_bad"] == {"win": 2, "tie": 0, "loss": 0, "invalid": 0, "n": 2, "winrate": 1.0}
    j2, info2 = run_pairwise(rows(), f"{fault_server.base}#judge", cache_path=cache, backoff_s=0.01)
    assert info2["client"]["calls"] == 0 and info2["client"]["cache_hits"] == 12 and fault_server.requests == 12
    assert [x.outcome for x in j2] == [x.outcome for x in j]


def test_faults_are_retried_and_nothing_counted_twice(fault_server, tmp_path):


    def plan(msgs, n):  # every conversation: 500, then hang, then garbage, then OK
        return [("status", 500), ("hang", 4.0), ("garbage", b"not json"), ("ok", length_judge(msgs))][min(n, 3)]

    fault_server.plan = plan
    j, info = run_pairwise(rows(), f"{fault_server.base}#judge", cache_path=tmp_path / "c.sqlite", timeout_s=1.5,
                           backoff_s=0.01, concurrency=8)
    assert len(j) == 6 and info["client"]["errors"] == 0 and info["client"]["retries"] >= 36  # 3 faults x 12 convs
    res = compute_winrates(j, bootstrap=10)
    assert res["outcomes"] == {"a": 2, "b": 4, "tie": 0, "invalid": 0}  # 6 pairs, each counted once
    total = sum(c["win"] + c["tie"] + c["loss"] for row in res["pairs"].values() for c in row.values())
    assert total == 12  # each pair appears once per direction


def test_unparseable_retried_once_then_invalid_never_tie(fault_server, tmp_path):
    def plan(msgs, n):
        last = msgs[-1]["content"]
        if "schlecht" in json.dumps(msgs, ensure_ascii=False):
            return ("ok", "I cannot decide.")  # verdict-free, also after the reminder
        if msgs[-1]["role"] == "user" and "nur mit genau einem Urteil" in last:
            return ("ok", "[[A]]")
        return ("ok", "Hmm." if "gut gut gut" in last.split("[Antwort B]")[0] else length_judge(msgs))

    fault_server.plan = plan
    j, info = run_pairwise(rows(), f"{fault_server.base}#judge", cache_path=tmp_path / "c.sqlite", backoff_s=0.01)
    by = {(x.prompt_id, x.model_a, x.model_b): x for x in j}
    bad = [x for x in j if "m_bad" in (x.model_a, x.model_b)]
    assert all(x.outcome == "invalid" for x in bad) and len(bad) == 4
    assert info["invalid_orders"] == 8 and info["unparseable_first"] >= 8
    # m_good vs m_mid: the first order answered "Hmm." then [[A]] after the reminder → a valid verdict
    x = by[("p1", "m_good", "m_mid")]
    assert x.verdict_ab == "A" and x.outcome != "invalid"
    res = compute_winrates(j, bootstrap=5)
    assert res["outcomes"]["invalid"] == 4 and res["pairs"]["m_bad"]["m_good"]["tie"] == 0


def test_scores_mode_on_germedbench_13_models():
    from finemed.evaluation.answers import load_answers

    rows_ = load_answers("builtin:germedbench_patient_text")
    j, info = run_pairwise(rows_, "scores:overall")
    assert info["pairs"] == 50 * 13 * 12 // 2 == len(j)
    res = compute_winrates(j, bootstrap=0)
    assert len(res["ranking"]) == 13
    # win-rate ranking agrees with the mean judge score ranking at the top and bottom
    mean = {}
    for r in rows_:
        mean.setdefault(r.model, []).append(r.scores["overall"])
    by_mean = sorted(mean, key=lambda m: -sum(mean[m]) / len(mean[m]))
    assert set(res["ranking"][:2]) == set(by_mean[:2])
    assert set(res["ranking"][-2:]) == set(by_mean[-2:])

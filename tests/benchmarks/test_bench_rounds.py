"""``benchmarks/_rounds.py``: alternation order, per-round pairing, the min/median/max summary, fresh processes."""

from __future__ import annotations

import sys

import _rounds as R  # benchmarks/ (tests/benchmarks/conftest.py)
import pytest


def test_order_alternates_so_no_side_always_runs_first():
    assert [R.order(["a", "b"], r) for r in range(4)] == [["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]]
    assert R.order(["a", "b", "c"], 1) == ["c", "b", "a"]


def test_run_rounds_calls_in_alternating_order_and_pairs_rounds():
    calls: list[str] = []
    values = {"ours": iter([1.0, 2.0, 4.0]), "peer": iter([2.0, 2.0, 2.0])}

    def side(name):
        def fn():
            calls.append(name)
            return next(values[name])
        return fn

    lines: list[str] = []
    res = R.run_rounds({"ours": side("ours"), "peer": side("peer")}, rounds=3, log=lines.append)
    assert calls == ["ours", "peer", "peer", "ours", "ours", "peer"]
    assert res.orders == [["ours", "peer"], ["peer", "ours"], ["ours", "peer"]]
    assert res.values == {"ours": [1.0, 2.0, 4.0], "peer": [2.0, 2.0, 2.0]}
    assert res.ratios("ours", "peer") == [0.5, 1.0, 2.0]
    assert lines[0] == "round 0 ours: 1" and len(lines) == 6


def test_warmup_calls_each_side_once_unrecorded():
    n = {"a": 0, "b": 0}

    def bump(k):
        n[k] += 1
        return float(n[k])

    res = R.run_rounds({"a": lambda: bump("a"), "b": lambda: bump("b")}, rounds=3, warmup=True, log=None)
    assert n == {"a": 4, "b": 4} and res.values["a"] == [2.0, 3.0, 4.0]


def test_fewer_than_three_rounds_is_refused():
    with pytest.raises(ValueError, match="at least 3 rounds"):
        R.run_rounds({"a": lambda: 1.0}, rounds=2)


def test_summary_math_and_the_last_line(capsys):
    s = R.summarize([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.min, s.median, s.max) == (4, 1.0, 2.5, 10.0)
    assert str(R.summarize([0.9, 1.2, 1.0])) == "min=0.900 median=1.000 max=1.200 over 3 rounds"
    R.report("step", [0.9, 1.2, 1.0], "(goal >= 0.9)")
    assert R.print_ratio([0.9, 1.2, 1.0], "peer s / ours s (> 1: ours faster)") == 1.0
    out = capsys.readouterr().out.splitlines()
    assert out == ["step: min=0.900 median=1.000 max=1.200 over 3 rounds (goal >= 0.9)",
                   "ratio means: peer s / ours s (> 1: ours faster)", "ratio=1.000"]
    with pytest.raises(ValueError):
        R.summarize([])
    with pytest.raises(ValueError, match="must be peer over ours"):
        R.print_ratio([1.0, 1.0, 1.0], "ours s / peer s")


def test_fresh_process_reports_its_own_time_rss_and_json():
    code = "import json, time; x = bytearray(60 * 2**20); time.sleep(0.2); print('log'); print(json.dumps({'v': 7}))"
    run = R.fresh_process([sys.executable, "-c", code])
    assert run.last_json() == {"v": 7} and run.wall_s >= 0.2
    assert run.peak_rss_mb > 60  # the child's own peak, from wait4
    small = R.fresh_process([sys.executable, "-c", "print(1)"])
    assert small.peak_rss_mb < run.peak_rss_mb
    with pytest.raises(SystemExit, match="exit 3"):
        R.fresh_process([sys.executable, "-c", "import sys; sys.exit(3)"])

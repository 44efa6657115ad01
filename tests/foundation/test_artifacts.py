"""Atomic writes, manifests, and the stage cache (cached / --force / incomplete reruns)."""

from __future__ import annotations

import json

import pytest

from finemed.core.artifacts import atomic_path, atomic_write_json, fingerprint, read_manifest, run_cached
from finemed.core.config import StageConfig


class Cfg(StageConfig):
    x: int = 1


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}


def test_atomic_dir_replaces_whole_dir(tmp_path):
    target = tmp_path / "model"
    for content in ("one", "two"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "w.txt").write_text(content)
    assert (target / "w.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_fingerprint_follows_content(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x")
    first = fingerprint(f)
    f.write_text("y")
    assert fingerprint(f) != first
    assert fingerprint(tmp_path / "missing") == "missing"
    d = tmp_path / "d"
    d.mkdir()
    (d / "b").write_text("1")
    fd = fingerprint(d)
    (d / "b").write_text("2")
    assert fingerprint(d) != fd


def test_cache_hit_force_and_input_change(tmp_path):
    calls = []
    inp = tmp_path / "input.txt"
    inp.write_text("v1")

    def fn():
        calls.append(1)
        return {"value": len(calls)}

    rd = tmp_path / "stage"
    first = run_cached("s", Cfg(), rd, fn, inputs={"data": inp})
    assert first.status == "complete" and calls == [1]
    again = run_cached("s", Cfg(), rd, fn, inputs={"data": inp})
    assert again.status == "cached" and again.result == {"value": 1} and calls == [1]
    assert run_cached("s", Cfg(), rd, fn, inputs={"data": inp}, force=True).status == "complete"
    assert run_cached("s", Cfg(x=2), rd, fn, inputs={"data": inp}).status == "complete"
    inp.write_text("v2")
    assert run_cached("s", Cfg(x=2), rd, fn, inputs={"data": inp}).status == "complete"
    assert len(calls) == 4
    m = read_manifest(rd)
    assert m.status == "complete" and m.inputs["data"] == fingerprint(inp)
    assert "torch" in m.versions and m.started and m.ended


def test_failed_and_killed_stages_run_again(tmp_path):
    rd = tmp_path / "stage"

    def boom():
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        run_cached("s", Cfg(), rd, boom)
    m = read_manifest(rd)
    assert m.status == "failed" and "bad input" in m.error
    # A process that died leaves "incomplete": the next run must not treat it as cached.
    m.status = "incomplete"
    atomic_write_json(rd / "manifest.json", m)
    assert run_cached("s", Cfg(), rd, lambda: 5).status == "complete"

"""``papers.select_cpt``: the CPT run a merge starts from, chosen on the probe's dev half by the stated rule.

Crafted sweep runs (manifest, metrics, a model dir) and cached probes (dev and test halves disagree on purpose), so
the stage runs without loading a model: the pick must follow dev, never test, and ``model`` must link to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.core.config import FinemedError
from finemed.papers.select_cpt import SelectCptConfig, rule_pick
from finemed.papers.select_cpt import run as select


def _probe(dev: int, test: int, n: int = 10) -> dict:
    items = [{"id": f"d{i}", "split": "dev", "passed": i < dev} for i in range(n)]
    return {"pass_rate": 0.0, "items": items + [{"id": f"t{i}", "split": "test", "passed": i < test} for i in range(n)]}


def _run(root: Path, name: str, bpb: float, steps: int = 12) -> Path:
    run = root / name
    (run / "model").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"stage": name, "status": "complete", "config_hash": "x",
                                                   "config": {"lr": 1e-3, "batch_size": 4, "seq_len": 256}}))
    (run / "metrics.json").write_text(json.dumps({"steps": steps, "bpb_before": {"domain": 2.5},
                                                  "bpb_after": {"domain": bpb}}))
    return run


def test_the_pick_reads_the_dev_half_and_model_links_to_it(tmp_path):
    runs = [_run(tmp_path, "mild", 2.3), _run(tmp_path, "hurt", 2.1), _run(tmp_path, "hurt_more", 2.2)]
    out = tmp_path / "select"
    probes = {"instruct": _probe(5, 5), "mild": _probe(5, 0), "hurt": _probe(3, 5), "hurt_more": _probe(2, 0)}
    for name, probe in probes.items():  # cached probes: the stage reads them instead of loading a model
        (out / "probe").mkdir(parents=True, exist_ok=True)
        (out / "probe" / f"{name}.json").write_text(json.dumps(probe))
    cfg = SelectCptConfig(runs=[str(r) for r in runs], instruct=str(tmp_path / "instruct"), min_probe_drop=0.2)
    res = select(cfg, out)
    # dev: instruct 0.5; hurt 0.3 and hurt_more 0.2 fall >= 0.2 below it; hurt has the lower bpb. On the test half
    # hurt would not count as hurt at all (0.5), and mild would (0.0): the rule never reads it.
    assert res.chosen == "hurt" and (out / "model").resolve() == (tmp_path / "hurt" / "model").resolve()
    sel = json.loads((out / "selection.json").read_text())
    assert sel["chosen"] == "hurt" and sel["instruct_probe_dev"] == 0.5
    assert [r["chosen"] for r in sel["rows"]] == [False, True, False]
    assert [r["probe"] for r in sel["rows"]] == [0.0, 0.5, 0.0]  # the test half is reported beside dev
    assert not (out / "model").resolve().is_relative_to(out) and not Path(out / "model").readlink().is_absolute()


def test_a_run_that_did_not_finish_is_one_line(tmp_path):
    (tmp_path / "half").mkdir()
    cfg = SelectCptConfig(runs=[str(tmp_path / "half")], instruct=str(tmp_path / "instruct"))
    (tmp_path / "select" / "probe").mkdir(parents=True)
    for name in ("instruct", "half"):
        (tmp_path / "select" / "probe" / f"{name}.json").write_text(json.dumps(_probe(1, 1)))
    with pytest.raises(FinemedError, match=r"holds no finished train.cpt run; run the sweep stages first"):
        select(cfg, tmp_path / "select")


def test_rule_pick_without_a_hurt_run_takes_the_lowest_dev_probe_among_learners():
    rows = [{"run": "a", "probe_dev": 0.4, "domain_bpb": 2.0, "domain_bpb_before": 2.5},
            {"run": "b", "probe_dev": 0.3, "domain_bpb": 2.2, "domain_bpb_before": 2.5},
            {"run": "diverged", "probe_dev": 0.0, "domain_bpb": 3.0, "domain_bpb_before": 2.5}]
    assert rule_pick(rows, instruct_probe=0.35, drop=0.1) == "b"

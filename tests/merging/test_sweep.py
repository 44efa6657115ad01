"""The t-sweep stage on tiny models: points for every t, the stated rule, the plot, the kept merged model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.core.config import ConfigError, load_config
from finemed.core.stages import run_stage
from finemed.merging.sweep import SweepConfig, SweepPoint, SweepResult, choose_t, select


def _pt(t, dom, rate, f1=None):
    return SweepPoint(t=t, label=f"t={t:g}", bpb={"domain": dom}, probe_pass_rate=rate, probe_by_lang={}, seconds=0,
                      qa_dev_f1=f1)


def test_rule_lowest_domain_bpb_among_those_keeping_the_probe():
    pts = [_pt(0.0, 2.4, 0.50), _pt(0.3, 2.2, 0.46), _pt(0.5, 2.1, 0.40), _pt(0.7, 2.0, 0.30), _pt(1.0, 1.9, 0.1)]
    assert choose_t(pts, base_pass=0.5, min_keep=0.8) == 0.5       # 0.40 >= 0.8 * 0.5
    assert choose_t(pts, base_pass=0.5, min_keep=0.9) == 0.3
    tie = [_pt(0.3, 2.0, 0.5), _pt(0.5, 2.0, 0.5)]
    assert choose_t(tie, base_pass=0.5, min_keep=0.8) == 0.3
    assert choose_t([_pt(0.5, 2.0, 0.1), _pt(0.7, 1.9, 0.2)], base_pass=0.9, min_keep=0.8) == 0.7


def test_rule_guards_qa_dev_f1():
    # instruct QA dev F1 30: a t keeps QA at >= 24 (0.8 x 30); probe keeps at >= 0.4 (0.8 x 0.5)
    pts = [_pt(0.0, 2.4, 0.50, 30.0), _pt(0.3, 2.2, 0.46, 28.0), _pt(0.5, 2.1, 0.44, 25.0),
           _pt(0.7, 2.0, 0.42, 20.0), _pt(1.0, 1.9, 0.45, 5.0)]
    pick, failed = select(pts, base_pass=0.5, min_keep=0.8, base_qa=30.0, min_qa_keep=0.8)
    assert (pick.t, failed) == (0.5, None)          # best bpb that keeps both; t=0.7 and 1.0 keep the probe, not QA
    assert choose_t(pts, 0.5, 0.8) == 1.0            # without the guard the rule would hand on the CPT model
    assert choose_t(pts, 0.5, 0.8, base_qa=30.0, min_qa_keep=0.6) == 0.7  # 20 >= 18: the share is the config's
    # no t keeps the probe: the highest probe among those that keep QA, never one below the QA share
    low = [_pt(0.5, 2.1, 0.10, 29.0), _pt(0.7, 2.0, 0.20, 26.0), _pt(1.0, 1.9, 0.30, 10.0)]
    pick, failed = select(low, base_pass=0.5, min_keep=0.8, base_qa=30.0, min_qa_keep=0.8)
    assert (pick.t, failed) == (0.7, None)
    # no t keeps QA: the highest QA dev F1, and one line that says so
    none = [_pt(0.5, 2.1, 0.45, 15.0), _pt(0.7, 2.0, 0.45, 21.0), _pt(1.0, 1.9, 0.45, 3.0)]
    pick, failed = select(none, base_pass=0.5, min_keep=0.8, base_qa=30.0, min_qa_keep=0.8)
    assert pick.t == 0.7 and "\n" not in failed
    assert failed == ("QA guard failed: no candidate keeps QA dev F1 >= 80% of the instruct model's (30.0); "
                      "chose the highest, t=0.7 at 21.0 (70%)")


def test_t_values_outside_unit_interval_rejected(tmp_path):
    (tmp_path / "s.yaml").write_text("cpt: x\nt_values: [0.2, 1.4]\n")
    with pytest.raises(ConfigError, match=r"outside \[0, 1\]"):
        load_config(SweepConfig, tmp_path / "s.yaml")


def test_sweep_on_tiny_models(tiny_pair, tmp_path):
    base, cpt = tiny_pair
    cfg = SweepConfig(base=str(base), cpt=str(cpt), t_values=[0.5], domain={"source": "builtin:grascco"},
                      general_eval={"general_de": {"source": "builtin:fortunes_de", "max_docs": 3}},
                      eval_max_docs=2, eval_max_length=64, probe_limit=4, probe_max_new_tokens=4, dtype="float32",
                      qa_dev={"limit": 3})
    res = SweepResult.model_validate(run_stage("merge.sweep", cfg, tmp_path / "sweep").result)
    assert [p.t for p in res.points] == [0.0, 0.5, 1.0]
    assert res.chosen_t == 0.5  # the only candidate t given; endpoints are references
    p0, p5, p1 = res.points
    assert set(p5.bpb) == {"domain", "general_de"} and all(v > 0 for v in p5.bpb.values())
    assert p0.bpb != p1.bpb and p5.bpb != p0.bpb
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "sweep" / "merged" / "model.safetensors").is_file()
    assert not (tmp_path / "sweep" / "merged-t0.5").exists()
    saved = json.loads((tmp_path / "sweep" / "metrics.json").read_text())
    assert saved["chosen_t"] == 0.5 and "lowest domain bpb" in saved["rule"]
    assert json.loads((tmp_path / "sweep" / "manifest.json").read_text())["kind"] == "merge.sweep"
    probe = json.loads((tmp_path / "sweep" / "probe" / "t0.5.json").read_text())
    assert len(probe["items"]) == 4
    # both halves of the probe, apart: the point's rate is the dev half's, the test half is kept for reporting
    assert sorted(it["split"] for it in probe["items"]) == ["dev", "dev", "test", "test"]
    assert p5.probe_pass_rate == probe["splits"]["dev"]["pass_rate"]
    assert p5.probe_test_pass_rate == probe["splits"]["test"]["pass_rate"]
    # the QA dev set: scored at every point through eval.qa's lm-eval path, recorded in sweep.json
    assert res.qa_dev["questions"] == 3 and res.qa_dev["task"] == "squad_v1_1shot"
    assert all(p.qa_dev_f1 is not None and 0 <= p.qa_dev_f1 <= 100 for p in res.points)
    assert (tmp_path / "sweep" / "qa_dev" / "t0.5" / "items_squad_v1_1shot.json").is_file()
    assert "QA dev F1 >= 80%" in saved["rule"] and saved["guard_failed"] is None


def test_sweep_says_in_one_line_when_no_t_keeps_qa(tiny_pair, tmp_path, monkeypatch, caplog):
    import logging

    import finemed.merging.sweep as sweep

    base, cpt = tiny_pair
    f1 = {base.name: 40.0, cpt.name: 10.0}  # instruct 40; the merge 20 and the CPT model 10: both under 0.8 x 40
    monkeypatch.setattr(sweep, "score_dev", lambda cfg, dev_file, out_dir, **kw: {
        "f1": f1.get(Path(str(kw.get("model_dir") or kw["model"].name_or_path)).name, 20.0), "em": 0.0, "n": 3})
    cfg = SweepConfig(base=str(base), cpt=str(cpt), t_values=[0.5, 1.0], domain={"source": "builtin:grascco"},
                      general_eval={}, eval_max_docs=1, eval_max_length=32, probe_limit=2, probe_max_new_tokens=2,
                      dtype="float32", min_probe_keep=0.0, qa_dev={"limit": 3})
    with caplog.at_level(logging.INFO, logger="finemed.merging.sweep"):
        res = SweepResult.model_validate(run_stage("merge.sweep", cfg, tmp_path / "sweep").result)
    assert [p.qa_dev_f1 for p in res.points] == [40.0, 20.0, 10.0]
    assert res.chosen == "t=0.5" and res.qa_kept == 0.5  # the highest QA dev F1 among the candidates
    lines = [r.getMessage() for r in caplog.records if "QA guard failed" in r.getMessage()]
    assert lines == [res.guard_failed] and "t=0.5 at 20.0 (50%)" in lines[0]
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["guard_failed"] == lines[0]


def test_layerwise_schedule_is_a_sweep_point(tiny_pair, tmp_path):
    base, cpt = tiny_pair
    cfg = SweepConfig(base=str(base), cpt=str(cpt), t_values=[0.5], schedules={"valley": [0.0, 0.5, 1.0, 0.5, 0.0]},
                      domain={"source": "builtin:grascco"}, general_eval={}, eval_max_docs=2, eval_max_length=64,
                      probe_limit=4, probe_max_new_tokens=4, dtype="float32", keep="all", qa_dev=None)
    res = SweepResult.model_validate(run_stage("merge.sweep", cfg, tmp_path / "sweep").result)
    valley = next(p for p in res.points if p.label == "valley")
    uniform = next(p for p in res.points if p.label == "t=0.5")
    assert valley.schedule == [0.0, 0.5, 1.0, 0.5, 0.0] and valley.t == 0.4
    assert valley.bpb["domain"] != uniform.bpb["domain"]  # a different model than the uniform merge
    assert res.chosen in ("t=0.5", "valley") and (tmp_path / "sweep" / "merged-valley" / "config.json").is_file()
    with pytest.raises(ValueError, match="schedule 'bad'"):
        SweepConfig(cpt="x", schedules={"bad": [1.5, 0.0]})


def test_probe_rates_are_exact_so_a_share_at_the_bar_keeps_it():
    """8 of 62 dev items against the instruct model's 10 of 62 at min_keep 0.8 is exactly at the bar and keeps it;
    rates rounded to 4 decimals (0.129 < 0.8 x 0.1613) once chose t=0 over t=0.5 here (2026-12-06)."""
    from finemed.merging.probe import _rate

    base, merged = _rate([True] * 10 + [False] * 52), _rate([True] * 8 + [False] * 54)
    pts = [_pt(0.0, 2.3, base, 15.5), _pt(0.5, 1.9, merged, 32.5), _pt(1.0, 1.7, _rate([True] * 4 + [False] * 58), 0.8)]
    pick, failed = select(pts, base_pass=base, min_keep=0.8, base_qa=15.5, min_qa_keep=0.8)
    assert (pick.t, failed) == (0.5, None)

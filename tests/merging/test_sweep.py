"""The t-sweep stage on tiny models: points for every t, the stated rule, the plot, the kept merged model."""

from __future__ import annotations

import json

import pytest

from finemed.config import ConfigError, load_config
from finemed.merging.sweep import SweepConfig, SweepPoint, SweepResult, choose_t
from finemed.stages import run_stage


def _pt(t, dom, rate):
    return SweepPoint(t=t, bpb={"domain": dom}, probe_pass_rate=rate, probe_by_lang={}, seconds=0)


def test_rule_lowest_domain_bpb_among_those_keeping_the_probe():
    pts = [_pt(0.0, 2.4, 0.50), _pt(0.3, 2.2, 0.46), _pt(0.5, 2.1, 0.40), _pt(0.7, 2.0, 0.30), _pt(1.0, 1.9, 0.1)]
    assert choose_t(pts, base_pass=0.5, min_keep=0.8) == 0.5       # 0.40 >= 0.8 * 0.5
    assert choose_t(pts, base_pass=0.5, min_keep=0.9) == 0.3
    tie = [_pt(0.3, 2.0, 0.5), _pt(0.5, 2.0, 0.5)]
    assert choose_t(tie, base_pass=0.5, min_keep=0.8) == 0.3
    assert choose_t([_pt(0.5, 2.0, 0.1), _pt(0.7, 1.9, 0.2)], base_pass=0.9, min_keep=0.8) == 0.7


def test_t_values_outside_unit_interval_rejected(tmp_path):
    (tmp_path / "s.yaml").write_text("cpt: x\nt_values: [0.2, 1.4]\n")
    with pytest.raises(ConfigError, match=r"outside \[0, 1\]"):
        load_config(SweepConfig, tmp_path / "s.yaml")


def test_sweep_on_tiny_models(tiny_pair, tmp_path):
    base, cpt = tiny_pair
    cfg = SweepConfig(base=str(base), cpt=str(cpt), t_values=[0.5], domain={"source": "builtin:grascco"},
                      general_eval={"general_de": {"source": "builtin:fortunes_de", "max_docs": 3}},
                      eval_max_docs=2, eval_max_length=64, probe_limit=4, probe_max_new_tokens=4, dtype="float32")
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


def test_layerwise_schedule_is_a_sweep_point(tiny_pair, tmp_path):
    base, cpt = tiny_pair
    cfg = SweepConfig(base=str(base), cpt=str(cpt), t_values=[0.5], schedules={"valley": [0.0, 0.5, 1.0, 0.5, 0.0]},
                      domain={"source": "builtin:grascco"}, general_eval={}, eval_max_docs=2, eval_max_length=64,
                      probe_limit=4, probe_max_new_tokens=4, dtype="float32", keep="all")
    res = SweepResult.model_validate(run_stage("merge.sweep", cfg, tmp_path / "sweep").result)
    valley = next(p for p in res.points if p.label == "valley")
    uniform = next(p for p in res.points if p.label == "t=0.5")
    assert valley.schedule == [0.0, 0.5, 1.0, 0.5, 0.0] and valley.t == 0.4
    assert valley.bpb["domain"] != uniform.bpb["domain"]  # a different model than the uniform merge
    assert res.chosen in ("t=0.5", "valley") and (tmp_path / "sweep" / "merged-valley" / "config.json").is_file()
    with pytest.raises(ValueError, match="schedule 'bad'"):
        SweepConfig(cpt="x", schedules={"bad": [1.5, 0.0]})

"""The recipe runner: stages in order, summary.json, and cached reruns that load no model."""

from __future__ import annotations

import json
from pathlib import Path

import finemed.evaluation.perplexity as perplexity
from finemed.orchestrate.recipe import run_recipe

REPO = Path(__file__).resolve().parents[2]


def test_tiny_recipe_runs_then_is_cached_without_loading_a_model(tmp_path, tiny_model_dir, monkeypatch):
    recipe = REPO / "recipes" / "tiny.yaml"
    overrides = [f"bpb.model={tiny_model_dir}"]
    first = run_recipe(recipe, overrides, runs_dir=tmp_path)
    assert [o.status for o in first] == ["complete"]
    bpb = json.loads((tmp_path / "tiny" / "bpb" / "bpb.json").read_text())
    assert set(bpb["bpb"]) == {"medical", "english"} and all(v > 0 for v in bpb["bpb"].values())
    summary = json.loads((tmp_path / "tiny" / "summary.json").read_text())
    assert summary["stages"][0]["status"] == "complete" and summary["stages"][0]["metric"] == "bpb"

    loads = []
    real = perplexity.load_causal_lm
    monkeypatch.setattr(perplexity, "load_causal_lm", lambda *a, **k: loads.append(a) or real(*a, **k))
    second = run_recipe(recipe, overrides, runs_dir=tmp_path)
    assert [o.status for o in second] == ["cached"] and loads == []
    assert second[0].result["bpb"] == bpb["bpb"]
    third = run_recipe(recipe, overrides, runs_dir=tmp_path, force=True)
    assert [o.status for o in third] == ["complete"] and len(loads) == 1
    changed = run_recipe(recipe, overrides + ["bpb.max_docs=2"], runs_dir=tmp_path)
    assert [o.status for o in changed] == ["complete"]


def test_quickstart_recipe_validates_every_stage_config(tmp_path):
    from finemed.core.stages import get
    from finemed.orchestrate.recipe import load_recipe, resolve_stages

    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml")
    resolved = resolve_stages(recipe, tmp_path / "quickstart", "quickstart.yaml")
    assert [e.name for e, _ in resolved][:4] == ["fetch", "labels", "classifier", "corpus"]
    for entry, cfg in resolved:
        assert isinstance(cfg, get(entry.kind).config)
    judge = next(c for e, c in resolved if e.name == "judge")
    assert judge.answers.endswith("answers/answers.jsonl") and judge.judge.startswith("local:")

"""The real-scale DeFineMed recipe parses and every stage config validates against its stage model."""

from __future__ import annotations

from pathlib import Path

from finemed.recipe import STAGES, _resolve, load_recipe
from finemed.config import validate

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "definemed-qwen2.5-7b.yaml"


def test_definemed_recipe_validates():
    recipe = load_recipe(RECIPE)
    refs = {"cache": "/cache", "data": "/data", **{f"stage:{s.name}": f"/runs/{s.name}" for s in recipe.stages}}
    kinds = {}
    for entry in recipe.stages:
        cls, fn = STAGES[entry.kind].load()
        kinds[entry.kind] = validate(cls, _resolve(entry.config, refs, entry.name), entry.name)
    cpt, sweep = kinds["train.cpt"], kinds["merge.sweep"]
    assert cpt.model == "/cache/models/Qwen2.5-7B-Instruct" and cpt.warmup_steps == 500 and cpt.epochs == 2
    assert cpt.lr_scheduler == "linear" and cpt.precision == "bf16" and cpt.seq_len == 4096
    assert sweep.cpt == "/runs/cpt/model" and sweep.method == "slerp"

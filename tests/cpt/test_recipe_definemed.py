"""The real-scale DeFineMed recipe parses and every stage config validates against its registered stage."""

from __future__ import annotations

from pathlib import Path

from finemed.core import stages
from finemed.core.config import validate
from finemed.orchestrate.recipe import _resolve, load_recipe

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "definemed-qwen2.5-7b.yaml"


def test_definemed_recipe_validates():
    recipe = load_recipe(RECIPE)
    refs = {"cache": "/cache", "data": "/data", **{f"stage:{s.name}": f"/runs/{s.name}" for s in recipe.stages}}
    kinds = {}
    for entry in recipe.stages:
        kinds[entry.kind] = validate(stages.get(entry.kind).config, _resolve(entry.config, refs, entry.name),
                                     entry.name)
    cpt, sweep = kinds["train.cpt"], kinds["merge.sweep"]
    assert cpt.model == "Qwen/Qwen2.5-7B-Instruct" and cpt.warmup_steps == 500 and cpt.epochs == 2
    assert cpt.domain.source == "/runs/corpus/output" and sweep.domain.source == "/runs/corpus/output"
    assert cpt.lr_scheduler == "linear" and cpt.dtype == "bfloat16" and cpt.seq_len == 4096
    assert cpt.general_eval["general_de"].source == "builtin:fortunes_de"
    assert sweep.cpt == "/runs/cpt/model" and sweep.method == "slerp"

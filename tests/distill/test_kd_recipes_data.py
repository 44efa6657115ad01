"""The KD recipes score only articles they never trained on, and do not repeat their data ~60 times (issue 22, 9).

Each real KD recipe's split stage runs for real (bundled XQuAD-en and MLQA-de); its distill stages' data is built
with their own settings (a tiny tokenizer stands in for the teacher's: the QA sequence count does not depend on
it, the text block count barely does). Every context its eval.qa stages score must be absent from the decoded
training sequences and prompts, and the planned steps must pass over the training set at most ~2.5 times.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from finemed.core import stages
from finemed.data.loaders import load_squad
from finemed.distill.data import build_data
from finemed.models.tiny import tiny_tokenizer
from finemed.orchestrate.recipe import load_recipe, resolve_stages

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["kd-qa-qwen2.5", "kd-qa-pythia"])
def test_kd_recipe_trains_on_unscored_articles_about_twice(name, tmp_path):
    path = REPO / "recipes" / f"{name}.yaml"
    root = tmp_path / "run"
    resolved = resolve_stages(load_recipe(path), root, str(path))
    for entry, cfg in resolved:
        if entry.kind.startswith("data."):  # the split writes the files the other stages name
            stages.run_stage(entry.kind, cfg, root / entry.name, name=entry.name)
    distill = [cfg for entry, cfg in resolved if entry.kind == "train.distill"]
    evals = [cfg for entry, cfg in resolved if entry.kind == "eval.qa"]
    assert distill and evals and all(c.data for c in evals)  # every eval.qa scores a file, not a whole bundled set
    scored = {e.context for c in evals for e in load_squad(c.data)}
    assert len(scored) > 50
    tok = tiny_tokenizer()
    (ids, _, _), _, held_qa, _, prompts = build_data(distill[0], tok, tmp_path / "work")
    train_text = tok.decode(ids.flatten().tolist())
    seen = [c for c in scored if c[:100] in train_text]
    assert not seen, f"{len(seen)} of {len(scored)} scored contexts are in the training sequences"
    assert not any(c[:100] in p for c in scored for p in prompts)  # nor in the on-policy prompts
    for c in distill:  # every student: planned sequences over the unique training sequences
        epochs = c.steps * c.batch_size * c.launch.world_size / ids.size(0)
        assert epochs <= 2.5, f"{c.student}: {epochs:.1f} passes over {ids.size(0)} training sequences"

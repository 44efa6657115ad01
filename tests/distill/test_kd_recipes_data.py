"""The KD recipes score only articles they never trained on, and do not repeat their data ~60 times (issue 22, 9).

Each real KD recipe's distill stages are built with their own data settings (a tiny tokenizer stands in for the
teacher's: the QA sequence count does not depend on it, the text block count barely does); every context of
every question its eval.qa stages score must be absent from the decoded training sequences, and the planned
optimizer steps must see the training set at most ~2.5 times.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from finemed.distill.data import build_data
from finemed.models.tiny import tiny_tokenizer
from finemed.recipe import load_recipe, resolve_stages

REPO = Path(__file__).resolve().parents[2]
TASKS = REPO / "finemed" / "evaluation" / "tasks"
sys.path.insert(0, str(TASKS))
from utils import qa_rows  # noqa: E402


def _scored_contexts(task: str) -> set[str]:
    meta = yaml.safe_load((TASKS / f"finemed_{task}.yaml").read_text())["metadata"]
    rows = qa_rows(meta["dataset"], meta.get("shots", 0), split=meta.get("split"))
    return {r["context"] for r in rows}


@pytest.mark.parametrize("name", ["kd-qa-qwen2.5", "kd-qa-pythia"])
def test_kd_recipe_trains_on_unscored_articles_about_twice(name, tmp_path):
    path = REPO / "recipes" / f"{name}.yaml"
    resolved = resolve_stages(load_recipe(path), tmp_path / "run", str(path))
    distill = [cfg for entry, cfg in resolved if entry.kind == "train.distill"]
    tasks = {t for entry, cfg in resolved if entry.kind == "eval.qa" for t in cfg.tasks}
    assert distill and tasks
    scored = set().union(*(_scored_contexts(t) for t in tasks))
    tok = tiny_tokenizer()
    cfg = distill[0]
    (ids, _, _), _, held_qa, _, prompts = build_data(cfg, tok, tmp_path / "work")
    train_text = tok.decode(ids.flatten().tolist())
    seen = [c for c in scored if c[:100] in train_text]
    assert not seen, f"{len(seen)} of {len(scored)} scored contexts are in the training sequences"
    assert not any(c[:100] in p for c in scored for p in prompts)  # nor in the on-policy prompts
    assert {e.context for e in held_qa} <= scored  # the stage's own EM/F1 is on scored (unseen) articles too
    for c in distill:  # every student: planned sequences over the unique training sequences
        epochs = c.steps * c.batch_size * c.launch.world_size / ids.size(0)
        assert epochs <= 2.5, f"{c.student}: {epochs:.1f} passes over {ids.size(0)} training sequences"

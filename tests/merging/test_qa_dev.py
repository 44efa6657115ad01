"""The merge sweep's QA dev set: stable, off data.qa_split's test articles, and disjoint from every QA item the
quickstart's eval.qa stages score (the scoreboard's test items)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finemed.core.config import FinemedError
from finemed.core.lmeval_tasks.utils import QA_DATASETS, qa_rows
from finemed.data.qa_splits import load_qa_source, split_articles
from finemed.merging.qa_dev import QADevConfig, dev_examples, write_dev_set

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _stages(recipe: str) -> list[dict]:
    return yaml.safe_load((RECIPES / recipe).read_text())["stages"]


def _scored_items(recipe: str) -> list[dict]:
    """Every XQuAD/MLQA item the recipe's eval.qa stages score: lm-eval's ``limit`` takes the first N rows."""
    rows = []
    for st in _stages(recipe):
        if st["kind"] != "eval.qa":
            continue
        cfg = st["config"]
        for task in cfg["tasks"]:
            dataset, shots = task.rsplit("_", 1)
            assert dataset in QA_DATASETS and dataset != "squad_v1", f"{st['name']}: {task} reads no bundled set"
            rows += qa_rows(dataset, int(shots.removesuffix("shot")), n=cfg.get("limit"))
    return rows


@pytest.mark.parametrize("recipe", ["quickstart.yaml", "papers/definemed-mini.yaml"])
def test_dev_articles_are_disjoint_from_the_scored_qa_items(recipe):
    merge = next(st for st in _stages(recipe) if st["kind"] == "merge.sweep")["config"]
    cfg = QADevConfig(**merge.get("qa_dev", {}))
    dev = dev_examples(cfg, merge.get("seed", 0))
    scored = _scored_items(recipe) if recipe == "quickstart.yaml" else []
    if recipe == "quickstart.yaml":
        assert len(scored) >= 80 and "Super_Bowl_50" in {r["title"] for r in scored}  # XQuAD de/en share ids
    assert not {e.title for e in dev} & {r["title"] for r in scored}
    assert not {e.id for e in dev} & {r["id"] for r in scored}
    # and never an article data.qa_split (default fraction and seed) puts in its test file
    _, qa_split_test = split_articles(load_qa_source("xquad.en"), 0.25, 0)
    assert not {e.title for e in dev} & {e.title for e in qa_split_test}


def test_dev_set_is_stable_small_and_spread(tmp_path):
    cfg = QADevConfig()
    dev = dev_examples(cfg)
    assert len(dev) == 16 and all(e.answers and len(e.context) <= 700 for e in dev)
    assert len({e.title for e in dev}) == 8
    assert [e.id for e in dev] == [e.id for e in dev_examples(QADevConfig())]
    assert {e.title for e in dev} <= {"Amazon_rainforest", "American_Broadcasting_Company", "Chloroplast", "Ctenophora",
                                      "French_and_Indian_War", "Immune_system", "Packet_switching", "Prime_number",
                                      "Steam_engine"}
    info = write_dev_set(cfg, 0, tmp_path / "dev.json")
    assert info["ids"] == [e.id for e in dev] and info["task"] == "squad_v1_1shot"
    written = load_qa_source(str(tmp_path / "dev.json"))
    assert [e.id for e in written] == info["ids"] and written[0].answers == dev[0].answers


def test_too_few_articles_for_one_shot_is_one_line():
    with pytest.raises(FinemedError, match="qa_dev: 1 question"):
        dev_examples(QADevConfig(limit=1))
    assert len(dev_examples(QADevConfig(limit=1, shots=0))) == 1

"""The model card: parses with huggingface_hub.ModelCard, and its model-index validates and holds the run's evals."""

from __future__ import annotations

import json

import pytest

from finemed.core.artifacts import atomic_write_json, run_cached
from finemed.core.config import FinemedError, StageConfig
from finemed.orchestrate.report.card import write_card


class MergeCfg(StageConfig):
    base: str = "smollm2"
    cpt: str = "runs/x/cpt/model"
    method: str = "slerp"


class QaCfg(StageConfig):
    model: str = "runs/x/merge/merged"


def test_card_parses_and_model_index_validates(tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    run = tmp_path / "demo"
    run_cached("merge", MergeCfg(), run / "merge", lambda: {"chosen_t": 0.5}, kind="merge.sweep")
    (run / "merge" / "merged").mkdir()
    (run / "merge" / "merged" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    run_cached("qa", QaCfg(), run / "qa", lambda: {"tasks": {"xquad_de_0shot": {"exact_match": 12.5, "f1": 20.0}}},
               kind="eval.qa")
    atomic_write_json(run / "qa" / "metrics.json", {"tasks": {"xquad_de_0shot": {"exact_match": 12.5, "f1": 20.0}}})
    path = write_card(run, "merge")
    card = ModelCard.load(path)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.language == ["de"]
    assert card.data.license == "other"
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "demo-merge" and {(r.metric_type, r.metric_value) for r in results} == {("exact_match", 12.5),
                                                                                            ("f1", 20.0)}
    assert results[0].dataset_type == "google/xquad" and results[0].task_type == "question-answering"
    assert "## Data funnel" in card.text and "## Known failure modes" in card.text


def test_card_without_a_merge_stage_is_one_line(tmp_path):
    with pytest.raises(FinemedError, match="no complete stage 'merge'"):
        write_card(tmp_path, "merge")

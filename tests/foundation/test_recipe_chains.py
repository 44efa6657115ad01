"""The two chains DeFineMed is made of run as recipes on tiny models: our own models' answers -> a local judge ->
win-rates -> failure modes; and LLM labels -> classifier -> corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.core.artifacts import read_json
from finemed.models.tiny import save_tiny
from finemed.orchestrate.recipe import run_recipe

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return save_tiny(root / "a", seed=1), save_tiny(root / "b", seed=2)


def test_tiny_judge_own_models_recipe(tmp_path, two_tiny_models):
    a, b = two_tiny_models
    overrides = [f"generate.models=[{a},{b}]", f"pairwise.judge=local:{a}"]
    outcomes = run_recipe(REPO / "recipes" / "tiny-judge-own-models.yaml", overrides, runs_dir=tmp_path)
    assert [o.status for o in outcomes] == ["complete"] * 3
    run = tmp_path / "tiny-judge-own-models"
    answers = [json.loads(x) for x in (run / "generate" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 6 and {r["model"] for r in answers} == {str(a), str(b)}
    pairwise = read_json(run / "pairwise" / "metrics.json")
    assert pairwise["n_judgments"] == 3  # 3 prompts x 1 pair, each judged in both orders
    assert pairwise["outcomes"]["invalid"] == 0  # the tiny judge answers by probability where its text fails
    assert sum(pairwise["outcomes"].values()) == 3 and set(pairwise["ranking"]) == {str(a), str(b)}
    rows = [json.loads(x) for x in (run / "pairwise" / "judgments.jsonl").read_text().splitlines()]
    assert all(r["verdict_ab"] in ("A", "B", "tie") and r["verdict_ba"] in ("A", "B", "tie") for r in rows)
    failures = read_json(run / "failures" / "metrics.json")
    assert set(failures["models"]) == {str(a), str(b)} and failures["n_answers"] == 6
    again = run_recipe(REPO / "recipes" / "tiny-judge-own-models.yaml", overrides, runs_dir=tmp_path)
    assert [o.status for o in again] == ["cached"] * 3


def test_tiny_label_to_corpus_recipe(tmp_path, two_tiny_models):
    a, _ = two_tiny_models
    recipe = REPO / "recipes" / "tiny-label-to-corpus.yaml"
    outcomes = run_recipe(recipe, [f"annotate.llm=local:{a}"], runs_dir=tmp_path)
    assert [o.status for o in outcomes] == ["complete"] * 4
    run = tmp_path / "tiny-label-to-corpus"
    ann = read_json(run / "annotate" / "metrics.json")
    assert ann["share_labelled"] == 1.0 and ann["unparseable"] == 0 and ann["methods"] == {"probs": ann["labelled"]}
    clf = read_json(run / "classifier" / "metrics.json")
    assert clf["labels_from"].endswith("labels.jsonl") and clf["gold_test"] is not None
    assert clf["gold_test_docs"] > 100  # every sampled doc without an LLM label is a gold test doc
    build = read_json(run / "corpus" / "metrics.json")
    stats = read_json(run / "corpus" / "stats.json")
    assert build["input_docs"] > 0 and stats["classifier"] == str(run / "classifier")
    # kept may be 0: a random tiny labeller's labels decide what the classifier keeps (it flipped between two clean
    # CI runs). What must hold is the accounting: every funnel row's in - dropped = out, from the docs read to the
    # docs written.
    rows = stats["funnel"]
    assert rows and all(r["in"] - r["dropped"] == r["out"] for r in rows)
    assert rows[0]["block"] == "read" and rows[0]["out"] == build["input_docs"]
    assert rows[-1]["out"] == build["kept"]

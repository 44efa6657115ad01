"""Stage ``corpus.pii_eval``: the fixed dev/test split of GraSCCo, the headline test-half targets and the
clinical negative controls."""

from __future__ import annotations

import json

import pytest

from finemed.core.stages import get, run_stage
from finemed.corpus.pii_eval import PiiEvalConfig, negative_control, organ_words, split_ids
from finemed.data.loaders import load_grascco


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("pii")
    outcome = run_stage("corpus.pii_eval", PiiEvalConfig(), out)
    return out, outcome.result


def test_split_is_deterministic_disjoint_and_complete():
    ids = [d.id for d in load_grascco()]
    dev, test = split_ids(ids)
    assert (dev, test) == split_ids(list(reversed(ids)))  # order of the input does not matter
    assert not set(dev) & set(test) and sorted(dev + test) == sorted(ids)
    assert len(dev) == len(test) == 21
    assert split_ids(ids, seed=1) != (dev, test)  # the seed is what fixes it


def test_stage_is_registered_with_its_key_metric():
    sdef = get("corpus.pii_eval")
    assert sdef.config is PiiEvalConfig and sdef.metric == "test.micro.recall"
    assert PiiEvalConfig().input is None and PiiEvalConfig(input="x.jsonl").input == "x.jsonl"


def test_test_half_meets_targets(result):
    out, res = result
    test = res["test"]
    for group in ("CONTACT_*",):
        assert test["groups"][group]["recall"] >= 0.95, test["groups"][group]
    for label in ("ID", "DATE"):
        assert test["per_label"][label]["recall"] >= 0.95, (label, test["per_label"][label])
    assert test["groups"]["NAME_*"]["recall"] >= 0.85, test["groups"]["NAME_*"]
    assert test["leaks"] == 0 and res["dev"]["leaks"] == 0
    assert test["micro"]["precision"] >= 0.9
    detail = json.loads((out / "pii_eval.json").read_text())
    assert detail["test"]["micro"] == test["micro"] and detail["test_ids"] == res["test_ids"]
    assert set(detail["dev_ids"]) == set(res["dev_ids"]) and "miss_examples" in detail["test"]
    assert json.loads((out / "metrics.json").read_text())["clinical_untouched"] == res["clinical_untouched"]


def test_clinical_negatives_untouched_and_no_organ_word_lost(result):
    _, res = result
    assert res["negatives"] >= 150
    assert res["clinical_untouched"] >= 0.98, res["changed_negatives"]
    assert res["organ_words_before"] > 30 and res["organ_words_lost"] == 0


def test_negative_control_reports_changed_sentences(tmp_path):
    f = tmp_path / "neg.txt"
    f.write_text("# comment\nDie Leber ist groß.\nHerr Kowalczyk kam am 12.03.2024.\n", encoding="utf-8")
    res = negative_control(None, str(f))
    assert res["negatives"] == 2 and res["clinical_untouched"] == 0.5
    assert res["changed_negatives"] == [{"text": "Herr Kowalczyk kam am 12.03.2024.",
                                         "redacted": "Herr [NAME_PATIENT] kam am [DATE]."}]
    assert organ_words()["organ_words_lost"] == 0

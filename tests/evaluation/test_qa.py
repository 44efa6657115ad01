"""eval.qa's per-item scores (``items_<task>.json``), from lm-eval's logged samples: what eval.scoreboard pairs."""

from __future__ import annotations

from finemed.core.qa_eval import item_scores


def test_item_scores_keep_metrics_and_each_option_of_a_multiple_choice_item():
    qa = {"doc_id": 0, "doc": {"id": "q1", "answers": ["Rhein"]}, "filtered_resps": ["Rhein"],
          "metrics": ["exact_match", "f1", "rougeL"], "exact_match": 100.0, "f1": 100.0, "rougeL": 100.0}
    mcq = {"doc_id": 1, "doc": {"id": "m1", "choices": ["kurz", "eine lange Antwort"], "label": 1},
           "filtered_resps": [(-3.2, False), (-9.87654, False)], "metrics": ["acc", "acc_norm"],
           "acc": 0.0, "acc_norm": 1.0}
    no_id = {"doc_id": 7, "doc": {}, "filtered_resps": [""], "metrics": ["exact_match"], "exact_match": 0.0}
    out = item_scores([qa, mcq, no_id])
    assert out["q1"] == {"exact_match": 100.0, "f1": 100.0, "rougeL": 100.0}
    assert out["m1"] == {"acc": 0.0, "acc_norm": 1.0, "label": 1, "option_ll": [-3.2, -9.8765],
                         "option_chars": [4, 18]}
    assert out["7"] == {"exact_match": 0.0}

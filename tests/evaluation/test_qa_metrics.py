"""EM / F1 / ROUGE-L follow the official SQuAD v1.1 and MLQA scripts (crafted cases)."""

import pytest

from finemed.core.config import FinemedError
from finemed.core.qa_metrics import (
    default_metric,
    exact_match,
    f1,
    normalize_answer,
    rouge_l,
    score_one,
    score_predictions,
)
from finemed.data.loaders import QAExample


def test_squad_normalisation_articles_punctuation_case():
    assert normalize_answer("The  Denver Broncos!", "en", "squad") == "denver broncos"
    assert normalize_answer("a cat, an owl; the end.", "en", "squad") == "cat owl end"
    # articles only as whole words
    assert normalize_answer("Theatre", "en", "squad") == "theatre"
    # SQuAD v1.1 removes ASCII punctuation only: Unicode quotes and dashes stay
    assert normalize_answer("«Paris»", "en", "squad") == "«paris»"
    assert normalize_answer("1–2", "en", "squad") == "1–2"
    # SQuAD ignores German articles
    assert normalize_answer("die Katze", "de", "squad") == "die katze"


def test_mlqa_normalisation_unicode_punctuation_and_german_articles():
    assert normalize_answer("«Der Hund»", "de", "mlqa") == "hund"
    assert normalize_answer("„eine Frage“ — des Tages…", "de", "mlqa") == "frage tages"
    # every German article of the script, case-insensitively
    arts = "ein eine einen einem eines einer der die das den dem des"
    assert normalize_answer(arts.upper() + " Haus", "de", "mlqa") == "haus"
    # not inside words: "Dieser", "Ende", "dass" survive
    assert normalize_answer("Dieser Ende dass", "de", "mlqa") == "dieser ende dass"
    # Spanish and English article lists are per language
    assert normalize_answer("los gatos y la casa", "es", "mlqa") == "gatos y casa"
    assert normalize_answer("los gatos", "de", "mlqa") == "los gatos"
    assert normalize_answer("the cat", "en", "mlqa") == "cat"
    # Unicode letters stay
    assert normalize_answer("Größe: Ärzte!", "de", "mlqa") == "größe ärzte"


def test_mlqa_chinese_mixed_segmentation():
    assert normalize_answer("北京大学", "zh", "mlqa") == "北 京 大 学"
    assert f1("北京大学", "北京", "zh", "mlqa") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))


def test_em_f1_values():
    assert exact_match("the Broncos", "Broncos", "en") == 1.0
    assert f1("Denver Broncos team", "Denver Broncos", "en") == pytest.approx(0.8)
    assert f1("", "x", "en") == 0.0
    # v1.1: a gold that normalises to nothing matches an empty prediction on EM, F1 is 0
    assert exact_match("", "the", "en") == 1.0 and f1("", "the", "en") == 0.0
    # token counts (duplicates) matter
    assert f1("paris paris", "paris", "en") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_max_over_multiple_golds():
    s = score_one("Denver Broncos", ["Carolina Panthers", "the Denver Broncos", "Broncos"], "en")
    assert s["exact_match"] == 1.0 and s["f1"] == 1.0 and s["rougeL"] == 1.0
    s = score_one("Broncos of Denver", ["Denver Broncos", "Broncos"], "en")
    assert s["exact_match"] == 0.0
    assert s["f1"] == pytest.approx(max(2 * (2 / 3) * 1 / (2 / 3 + 1), 2 * (1 / 3) * 1 / (1 / 3 + 1)))


def test_rouge_l_keeps_umlauts_and_uses_lcs():
    # rouge_score's default tokenizer would drop ä/ö/ü; ours keeps them
    assert rouge_l("Ärzte für Kinder", "Ärzte", "de", "mlqa") == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))
    # LCS is order-sensitive where F1 is not
    assert f1("y x", "x y", "en") == 1.0
    assert rouge_l("y x", "x y", "en") == pytest.approx(0.5)


def test_default_metric_and_unknown_language():
    assert default_metric("en") == "squad" and default_metric("de") == "mlqa"
    with pytest.raises(FinemedError, match="MLQA"):
        score_one("x", ["x"], "xx", "mlqa")
    with pytest.raises(FinemedError, match="metric"):
        score_one("x", ["x"], "en", "bleu")


def _ex(i, golds):
    return QAExample(id=str(i), title="t", context="c", question="q", answers=golds)


def test_missing_predictions_count_as_wrong_and_extra_ids_are_ignored():
    exs = [_ex(1, ["Berlin"]), _ex(2, ["der Rhein"]), _ex(3, ["1990"]), _ex(4, ["Bonn"])]
    preds = {"1": "Berlin", "2": "Rhein", "99": "ignored"}
    s = score_predictions(exs, preds, "de")
    assert s["exact_match"] == pytest.approx(50.0)
    assert s["f1"] == pytest.approx(50.0)
    # squad semantics on German keeps "der": EM for id 2 drops
    assert score_predictions(exs, preds, "de", "squad")["exact_match"] == pytest.approx(25.0)


def test_real_xquad_gold_answers_score_100(tmp_path):
    from finemed.data.loaders import load_squad

    exs = load_squad(name="xquad.de")[:200]
    s = score_predictions(exs, {e.id: e.answers[0] for e in exs}, "de")
    assert s == {"exact_match": 100.0, "f1": 100.0, "rougeL": 100.0}

"""Failure modes: language mixing, scripts, verbosity, repetition, refusals (crafted and bundled GerMedIQ)."""

import json

import pytest

from finemed.core.stages import get, run_stage
from finemed.evaluation.failures import FailuresConfig, FailuresResult, analyse_answer, repetition_rate, run
from finemed.evaluation.langmix import script_of


def test_clean_german_answer():
    a = analyse_answer("Ich habe seit drei Tagen starke Kopfschmerzen. Die Schmerzen sind morgens am schlimmsten.",
                       "de", ref_words=5)
    assert a["off_lang_sentence_share"] == 0 and a["off_lang_char_share"] == 0
    assert not a["script_mixing"] and not a["refusal"] and not a["empty"]
    assert a["words"] == 13 and a["length_ratio"] == pytest.approx(13 / 5)


def test_english_sentence_and_cjk_in_german_answer():
    text = ("Ich habe seit drei Tagen starke Kopfschmerzen. I have also been feeling very tired for a week now. "
            "我没有身体。")
    a = analyse_answer(text, "de")
    # the 5-character Chinese sentence is called by its script; the English one by the detectors
    assert a["sentences"] == 3 and a["sentences_lid"] == 3
    assert a["off_lang_sentence_share"] == pytest.approx(2 / 3)
    assert 0.4 < a["off_lang_char_share"] < 0.8
    assert a["script_mixing"] and a["foreign_scripts"] == ["cjk"] and a["foreign_script_chars"] == 5
    assert a["off_languages"] == ["cjk", "en"]


def test_short_sentences_count_neither_way():
    a = analyse_answer("Ja. Ibuprofen 400 mg. Ich habe seit gestern Fieber und Husten.", "de")
    assert a["sentences"] == 3 and a["sentences_lid"] == 1 and a["off_lang_sentence_share"] == 0.0
    assert analyse_answer("Nein.", "de")["off_lang_sentence_share"] is None


def test_cyrillic_script_and_refusal_and_truncation():
    a = analyse_answer("Als KI kann ich das nicht sagen, привет.", "de", finish_reason="length")
    assert a["refusal"] and a["foreign_scripts"] == ["cyrillic"] and a["truncated"] is True
    assert script_of("ß") == "latin" and script_of("1") is None and script_of("Ж") == "cyrillic"


def test_repetition_and_empty():
    assert repetition_rate("a b c a b c a b c".split()) == pytest.approx(1 - 3 / 7)
    assert repetition_rate("a b c d".split()) == 0.0
    e = analyse_answer("   ", "de")
    assert e["empty"] and e["words"] == 0 and e["off_lang_sentence_share"] is None


def test_germediq_subset_table(tmp_path):
    from finemed.evaluation.answers import load_answers, write_answers

    rows = [r for r in load_answers("builtin:germediq") if int(r.prompt_id.split("-")[0]) <= 10]
    src = tmp_path / "giq.jsonl"
    write_answers(src, rows)
    res = run(FailuresConfig(answers=str(src)), tmp_path / "out")
    assert isinstance(res, FailuresResult) and not (tmp_path / "out" / "metrics.json").exists()
    table = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert len(table) == 19 and table == {m: v.model_dump() for m, v in res.models.items()}
    # humans answer in German, briefly; their length ratio to their own median is 1
    assert table["human"]["off_lang_sentence_share"] < 0.01 and table["human"]["off_lang_char_share"] < 0.01
    assert table["human"]["median_length_ratio"] == 1.0
    # the bundled mistral-7B answers mix in English (DeFineMed's failure mode); LLMs are wordier than humans
    assert table["mistral-7B-medical"]["answers_with_off_lang"] > 0.1
    assert table["mistral-7B-medical"]["off_lang_sentence_share"] > 0.1
    assert table["qwen2.5-7B-standard"]["mean_words"] > 2 * table["human"]["mean_words"]
    worst = json.loads((tmp_path / "out" / "failures_worst.json").read_text())
    assert worst["off_language"][0]["off_lang_char_share"] >= worst["off_language"][-1]["off_lang_char_share"]
    # per-answer rows for paired comparisons (eval.scoreboard): one per answer, their mean is the table's share
    items = json.loads((tmp_path / "out" / "failures_items.json").read_text())
    assert len(items) == res.n_answers
    mistral = [r["off_lang_sentence_share"] for r in items if r["model"] == "mistral-7B-medical"
               and r["off_lang_sentence_share"] is not None]
    assert sum(mistral) / len(mistral) == pytest.approx(table["mistral-7B-medical"]["off_lang_sentence_share"])


def test_failures_stage_through_run_stage(tmp_path):
    sdef = get("eval.failures")
    assert sdef.config is FailuresConfig and sdef.result is FailuresResult
    src = tmp_path / "a.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"model": "m1", "prompt_id": "1", "prompt": "Wie geht es?",
         "answer": "Mir geht es heute sehr gut, danke der Nachfrage."},
        {"model": "m2", "prompt_id": "1", "prompt": "Wie geht es?",
         "answer": "I am fine, thank you very much for asking."},
        {"model": "m3", "prompt_id": "1", "prompt": "Wie geht es?", "answer": "Mir geht es gut. 我很好，谢谢。"},
    ]), encoding="utf-8")
    outcome = run_stage("eval.failures", FailuresConfig(answers=str(src)), tmp_path / "run")
    table = json.loads((tmp_path / "run" / "failures.json").read_text())
    assert table["m1"]["off_lang_sentence_share"] == 0.0 and table["m2"]["off_lang_sentence_share"] == 1.0
    assert table["m3"]["off_lang_sentence_share"] == 0.5
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_answers"] == 3 and metrics["summary"] == outcome.result["summary"]
    assert "most mixing m2" in metrics["summary"]


def test_unknown_language_is_one_clear_error(tmp_path):
    from finemed.core.config import FinemedError

    with pytest.raises(FinemedError, match="failures lang 'xx'"):
        run(FailuresConfig(answers="builtin:germediq", lang="xx"), tmp_path)

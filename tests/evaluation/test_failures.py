"""Failure modes: language mixing, scripts, verbosity, repetition, refusals (crafted and bundled GerMedIQ)."""

import json

import pytest

from finemed.evaluation.failures import FailuresConfig, analyse_answer, repetition_rate, run, script_of


def test_clean_german_answer():
    a = analyse_answer("Ich habe seit drei Tagen starke Kopfschmerzen. Die Schmerzen sind morgens am schlimmsten.", "de",
                       ref_words=5)
    assert a["off_lang_sentence_share"] == 0 and a["off_lang_char_share"] == 0
    assert not a["script_mixing"] and not a["refusal"] and not a["empty"]
    assert a["words"] == 13 and a["length_ratio"] == pytest.approx(13 / 5)


def test_english_sentence_and_cjk_in_german_answer():
    text = ("Ich habe seit drei Tagen starke Kopfschmerzen. I have also been feeling very tired for a week now. "
            "我没有身体。")
    a = analyse_answer(text, "de")
    assert a["off_lang_sentence_share"] == pytest.approx(0.5)
    assert 0.3 < a["off_lang_char_share"] < 0.8
    assert a["script_mixing"] and a["foreign_scripts"] == ["cjk"] and a["foreign_script_chars"] == 5
    assert "en" in a["languages"]


def test_cyrillic_script_and_refusal_and_truncation():
    a = analyse_answer("Als KI kann ich das nicht sagen, привет.", "de", finish_reason="length")
    assert a["refusal"] and a["foreign_scripts"] == ["cyrillic"] and a["truncated"] is True
    assert script_of("ß") == "latin" and script_of("1") is None and script_of("Ж") == "cyrillic"


def test_repetition_and_empty():
    assert repetition_rate("a b c a b c a b c".split()) == pytest.approx(1 - 3 / 7)
    assert repetition_rate("a b c d".split()) == 0.0
    e = analyse_answer("   ", "de")
    assert e["empty"] and e["words"] == 0


def test_germediq_subset_table(tmp_path):
    from finemed.evaluation.answers import load_answers, write_answers

    rows = [r for r in load_answers("builtin:germediq") if int(r.prompt_id.split("-")[0]) <= 10]
    src = tmp_path / "giq.jsonl"
    write_answers(src, rows)
    res = run(FailuresConfig(answers=str(src)), tmp_path / "out")
    table = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert len(table) == 19 and table == res["models"]
    # humans answer in German, briefly; their length ratio to their own median is 1
    assert table["human"]["off_lang_char_share"] < 0.01 and table["human"]["median_length_ratio"] == 1.0
    # the bundled mistral-7B answers mix in English (DeFineMed's failure mode); LLMs are wordier than humans
    assert table["mistral-7B-medical"]["answers_with_off_lang"] > 0.1
    assert table["qwen2.5-7B-standard"]["mean_words"] > 2 * table["human"]["mean_words"]
    worst = json.loads((tmp_path / "out" / "failures_worst.json").read_text())
    assert worst["off_language"][0]["off_lang_char_share"] >= worst["off_language"][-1]["off_lang_char_share"]


def test_failures_stage_through_the_recipe_runner(tmp_path):
    from finemed.recipe import STAGES, run_recipe

    assert STAGES["eval.failures"].load()[0] is FailuresConfig
    src = tmp_path / "a.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"model": "m1", "prompt_id": "1", "prompt": "Wie geht es?", "answer": "Mir geht es heute sehr gut, danke der Nachfrage."},
        {"model": "m2", "prompt_id": "1", "prompt": "Wie geht es?", "answer": "I am fine, thank you very much for asking."},
    ]), encoding="utf-8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\nstages:\n  - name: fail\n    kind: eval.failures\n    config: {{answers: {src}}}\n")
    outcomes = run_recipe(recipe, None, runs_dir=tmp_path / "runs")
    table = json.loads(next((tmp_path / "runs").rglob("failures.json")).read_text())
    assert table["m1"]["off_lang_sentence_share"] == 0.0 and table["m2"]["off_lang_sentence_share"] == 1.0
    assert len(outcomes) == 1

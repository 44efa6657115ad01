"""The instruction probe: 128 bilingual items, each check on hand-written answers, scoring, and generation."""

from __future__ import annotations

import pytest

from finemed.merging.probe import check, instructions, probe_items, run_probe, score


def test_items_half_german_half_english_all_check_eos():
    items = instructions()
    assert len(items) == 128 and len({i.id for i in items}) == 128
    assert sum(i.lang == "de" for i in items) == 64
    assert all(i.checks[-1] == "eos" for i in items)
    kinds = {c.split(":")[0] for i in items for c in i.checks}
    assert {"lang", "max_words", "bullets", "numbered", "json", "yes_no", "eos"} <= kinds


@pytest.mark.parametrize("name,answer,lang,ok", [
    ("lang", "Bluthochdruck bedeutet, dass der Druck in den Blutgefäßen dauerhaft zu hoch ist.", "de", True),
    ("lang", "High blood pressure means the pressure in the vessels is too high.", "de", False),
    ("lang", "High blood pressure means the pressure in the vessels is too high.", "en", True),
    ("max_words:5", "eins zwei drei vier fünf", "de", True),
    ("max_words:5", "eins zwei drei vier fünf sechs", "de", False),
    ("bullets:3", "- Fieber\n- Husten\n* Müdigkeit", "de", True),
    ("bullets:3", "Symptome:\n- Fieber\n- Husten", "de", False),
    ("bullets:2", "1. Fieber\n2. Husten", "de", True),
    ("numbered:2", "1. Apfel\n2) Birne", "de", True),
    ("numbered:2", "1. Apfel 2. Birne", "de", False),
    ("json:name,age", '```json\n{"name": "Ann", "age": 3}\n```', "en", True),
    ("json:name,age", '{"name": "Ann"}', "en", False),
    ("json:name,age", "name: Ann, age: 3", "en", False),
    ("yes_no:de", "Ja.", "de", True),
    ("yes_no:de", "Yes.", "de", False),
    ("yes_no:en", "No, it is not.", "en", True),
    ("one_word", "Berlin.", "de", True),
    ("one_word", "Die Hauptstadt ist Berlin.", "de", False),
    ("number:12", "12", "en", True),
    ("number:12", "The answer is 12.", "en", False),
    ("upper:HEALTH", "HEALTH", "en", True),
    ("upper:HEALTH", "Health", "en", False),
    ("sentences:1", "Ein Stethoskop ist ein Hörgerät für Ärzte.", "de", True),
    ("sentences:1", "Es ist ein Gerät. Ärzte nutzen es.", "de", False),
    ("comma_list:5", "Kopf, Arm, Bein, Fuß, Hand", "de", True),
    ("comma_list:5", "Kopf, Arm, Bein", "de", False),
    ("ends_q", "Wo tut es weh?", "de", True),
    ("ends_q", "Wo tut es weh.", "de", False),
])
def test_checks(name, answer, lang, ok):
    assert check(name, answer, True, lang) is ok


def test_eos_check_and_score_aggregation():
    items = [i for i in instructions() if i.id in ("capital_word.de", "capital_word.en", "sum_number.en")]
    answers = [("Berlin", True), ("Berlin", False), ("12", True)]
    res = score(items, answers)
    assert [s.passed for s in res.items] == [True, False, True]
    assert res.pass_rate == 2 / 3 and res.by_lang == {"de": 1.0, "en": 0.5}  # exact, not rounded
    assert res.by_check["eos"] == 2 / 3 and res.by_check["one_word"] == 1.0


def test_probe_generates_through_the_shared_loop():
    from finemed.models.tiny import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_llama(vocab_size=len(tok))
    res = run_probe(model, tok, max_new_tokens=6, batch_size=2, limit=3)
    assert [i.id for i in res.items] == [i.id for i in probe_items("all", 3)]
    assert [i.split for i in res.items].count("dev") == 2 and set(res.splits) == {"dev", "test"}  # a limit keeps both
    for item in res.items:
        assert isinstance(item.answer, str) and item.checks["eos"] is item.stopped
        assert item.passed is all(item.checks.values())
    assert res.pass_rate == sum(i.passed for i in res.items) / 3 and tok.padding_side == "right"

"""Sentence splitting in any script and per-sentence language ID; the synthetic off-language-share benchmark."""

import pytest
from langmix_data import HAND_WRITTEN, SIB_LANGS, build, pools, score

from finemed.evaluation.langmix import call_sentence, off_language_share, split_sentences, word_count


def test_german_abbreviations_and_ordinals_do_not_split():
    text = ("Ich nehme z.B. Ibuprofen, bzw. ca. 3 Tabletten. Dr. Weber hat mich am 3. Mai in Zimmer Nr. 12 untersucht. "
            "Cortison ist die 3. Linie, z. B. bei Asthma. Mein Blutdruck liegt bei 140 zu 90. Danach ging es besser!")
    assert split_sentences(text) == [
        "Ich nehme z.B. Ibuprofen, bzw. ca. 3 Tabletten.", "Dr. Weber hat mich am 3. Mai in Zimmer Nr. 12 untersucht.",
        "Cortison ist die 3. Linie, z. B. bei Asthma.", "Mein Blutdruck liegt bei 140 zu 90.", "Danach ging es besser!"]


@pytest.mark.parametrize("text, n", [
    ("我没有身体。你好吗？我很好！Das ist gut.", 4),  # CJK terminals without spaces
    ("三日前から頭が痛いです。母は糖尿病です。", 2),
    ("هل تشعر بألم؟ نعم، أشعر بألم شديد۔ شكرا", 3),  # Arabic ؟ and ۔
    ("मुझे सिरदर्द है। मैं दवा लेता हूँ॥ धन्यवाद", 3),  # Devanagari danda, double danda
    ("Πονάει το κεφάλι σας; Ναι, πονάει πολύ.", 2),  # Greek question mark ";"
    ("Ցավում է գլուխս։ Այո։", 2),  # Armenian full stop
    ("ฉันปวดหัวมากสามวันแล้ว กรุณาช่วยฉันด้วย Ich bin müde.", 3),  # Thai: a space ends a sentence
    ("- erster Punkt ohne Ende\n* zweiter Punkt\n1. dritter Punkt\n\nNeuer Absatz", 4),  # bullets, lines
    ("Ist das so?Ja. Version 3.5 ist da.", 2),
])
def test_split_any_script(text, n):
    assert len(split_sentences(text)) == n


def test_short_sentences_are_not_called():
    for s in ("Ja.", "Ibuprofen 400 mg.", "CRP 12 mg/l, Leukozyten 11.000/µl.", "OK, danke."):
        assert call_sentence(s, "de").off is None and call_sentence(s, "de").rule == "short"
    assert word_count("Ich habe seit drei Tagen Kopfschmerzen.") == 6 and word_count("我没有身体。") == 3
    # a short sentence in a foreign script is still off-language: the script rule comes first
    assert call_sentence("这是什么意思?", "de").off is True and call_sentence("这是什么意思?", "de").rule == "script"


@pytest.mark.parametrize("sentence, off", [
    ("Ech hunn zënter dräi Deeg staark Kappwéi an et gëtt net besser.", True),  # Luxembourgish
    ("Ik heb al drie dagen hoofdpijn en het wordt niet beter.", True),  # Dutch
    ("Jeg har haft hovedpine i tre dage, og det bliver ikke bedre.", True),  # Danish
    ("Jeg har hatt vondt i hodet i tre dager, og det blir ikke bedre.", True),  # Norwegian
    ("Jag har haft ont i huvudet i tre dagar och det blir inte bättre.", True),  # Swedish
    ("Ich habe seit drei Tagen Kopfschmerzen und es wird nicht besser.", False),
    ("Ich habe Diabetes mellitus Typ 2 und spritze abends Insulin.", False),
    ("Ja, ich trage ein Piercing.", False),
    ("Um Gottes Willen, nein", False),
])
def test_close_languages_are_told_from_german(sentence, off):
    assert call_sentence(sentence, "de").off is off


def test_synthetic_parts_are_disjoint_and_span_many_languages():
    dev, test = pools("dev"), pools("test")
    assert all(not set(dev[lang]) & set(test[lang]) for lang in dev)
    others = {lang for lang in test if lang != "de"}
    assert others >= set(SIB_LANGS.values()) and len(others) >= 20 and set(HAND_WRITTEN) - {"de"} <= others


def test_off_language_share_within_003_on_the_test_part():
    """The acceptance benchmark: 12 synthetic models, off-language shares 0 … 1, test sentences only."""
    table = score(build("test"), lambda text: off_language_share(text, "de"))
    assert len(table) == 12 and {t for _, t, _, _ in table} >= {0.0, 0.05, 0.1, 0.147, 0.25, 0.5, 1.0}
    for model, _, truth, measured in table:
        assert abs(measured - truth) <= 0.03, (model, truth, measured)

"""The decontamination rule on crafted docs: boilerplate and lab values spared, one shared n-gram cut, leaks dropped."""

from __future__ import annotations

from finemed.corpus.decont import DecontConfig, index_from_items
from finemed.corpus.decont_rule import decide, hash_func

OPENING = "Sehr geehrte Frau Kollegin, sehr geehrter Herr Kollege, wir berichten über unseren gemeinsamen Patienten"
CASES = [
    f"{OPENING} Herrn A. Er wurde mit einer ambulant erworbenen Pneumonie des rechten Unterlappens aufgenommen.",
    f"{OPENING} Herrn B. Er stellte sich mit einer akut dekompensierten Herzinsuffizienz bei Vorhofflimmern vor.",
    f"{OPENING} Frau C. Sie kam mit einem Erysipel des linken Unterschenkels und hohem Fieber zur Aufnahme.",
]
LEAK = ("Die Patientin berichtet über seit drei Wochen zunehmende Luftnot bei Belastung, nächtlichen Husten und "
        "eine Gewichtszunahme von vier Kilogramm, die Knöchel sind abends deutlich geschwollen und schmerzen")
LAB = "Labor: GGT 12 U/l AP 80 U/l Bilirubin gesamt 0,4 mg/dl Kreatinin 1,1 mg/dl Harnstoff 30 mg/dl CRP 4 mg/l"
FILLER = " ".join(f"Absatz {i}: Der weitere Verlauf gestaltete sich unauffällig und ohne neue Beschwerden."
                  for i in range(12))


def _setup(**overrides):
    cfg = DecontConfig(sets=[], **overrides)
    lab_case = f"Aufnahme wegen Oberbauchschmerzen nach fettreichem Essen, Cholezystolithiasis. {LAB}. {LEAK[:60]}"
    items = [(f"case#{i}", t) for i, t in enumerate(CASES)] + [("leak#0", LEAK), ("lab#0", lab_case)]
    return cfg, index_from_items(items, cfg.n_grams), hash_func()


def test_boilerplate_in_many_items_is_ignored():
    cfg, index, h = _setup()
    doc = f"{OPENING}, den wir wegen Kopfschmerzen sahen. {FILLER}"  # only the opening's own n-grams are shared
    assert decide(doc, index, cfg, h).action == "keep"
    cfg1, index1, _ = _setup(max_item_df=4)  # no longer boilerplate: its n-grams are cut, the doc stays
    d = decide(doc, index1, cfg1, h)
    assert d.action == "cut" and d.cuts == 1 and "geehrter Herr Kollege" not in d.text


def test_one_shared_span_is_cut_not_dropped():
    cfg, index, h = _setup()
    excerpt = " ".join(LEAK.split()[:15])  # 3 shared 13-grams, 20% of the item: below PaLM's 70%
    doc = f"{FILLER} {excerpt} {FILLER}"
    d = decide(doc, index, cfg, h)
    assert d.action == "cut" and d.cuts == 1
    assert "zunehmende Luftnot" not in d.text and len(d.text) > len(doc) - len(excerpt) - 2 * cfg.window_chars - 5
    assert d.text.startswith("Absatz 0") and d.text.endswith("Beschwerden.")


def test_a_whole_item_drops_the_doc():
    cfg, index, h = _setup()
    d = decide(f"{FILLER} {LEAK}. {FILLER}", index, cfg, h)
    assert d.action == "drop" and d.item == "leak#0" and d.coverage == 1.0


def test_more_than_max_cuts_drops():
    cfg, index, h = _setup(leak_share=1.0, window_chars=0, max_cuts=2)
    words = LEAK.split()
    spans = [" ".join(words[i:i + 13]) for i in (0, 6, 12)]  # three separate 13-word spans
    doc = f" {FILLER} ".join(spans)
    assert decide(doc, index, cfg, h).action == "drop"
    assert decide(doc, index, cfg.model_copy(update={"max_cuts": 3}), h).action == "cut"


def test_digits_are_kept_and_lab_lines_ignored():
    cfg, index, h = _setup()
    other_values = LAB.replace("12", "48").replace("80", "95").replace("0,4", "1,2")
    assert decide(f"{FILLER} {other_values}", index, cfg, h).action == "keep"  # simplify_text made these equal
    same_values = f"{FILLER} {LAB.replace('0,4', '0.4')}"  # same panel, other decimal mark: mostly numbers/units
    assert decide(same_values, index, cfg, h).action == "keep"
    strict = cfg.model_copy(update={"max_numeric_share": 1.0})
    assert decide(same_values, index, strict, h).action in ("cut", "drop")  # the key matched; only the skip spares it

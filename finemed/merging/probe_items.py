"""The instruction probe's items and their fixed dev/test split.

64 tasks, each asked in German and in English (128 instructions): the 25 original tasks and 39 added in the same
style (same check kinds, new topics) so that the test half can show a drop of 0.1 (see below). Checks are applied
by :func:`finemed.merging.probe.check`; every instruction also gets ``eos``.

**The split.** A *task* (both its languages together, so the German and English wording of one instruction never
sit on opposite sides) is ``test`` when :func:`finemed.core.texts.heldout_score` of ``"probe:" + task id`` (seed 0) is
below 0.5, else ``dev``: 33 tasks (66 instructions) test, 31 tasks (62) dev. The rule depends on a task's own id
only, so adding tasks never moves an old one. Selections (the merge sweep's t) read ``dev``; verdicts and the
scoreboard read ``test``.

**Why 64 tasks.** An exact two-sided McNemar test on n paired test items counts the discordant pairs: b items
only model A passes, c only model B. A drop of 0.1 is b - c = 0.1 n. With c = 0 the p-value is 2 * 0.5**b, below
0.05 only from b = 6 (p = 0.031; b = 5 gives 0.0625), so the test half needs n >= 60: the old 50 items split in
half (25) could not show it at all. With 66 test items a drop of 0.1 is b - c = 6.6, which reaches p < 0.05 when
the discordant pairs all go one way (b = 7, c = 0: p = 0.016); b = 8, c = 1 gives p = 0.039. Every item costs
decoding time at every sweep point, so the probe grew only to just above that bound.

This is a hand list because no library has a bilingual (de/en) instruction set with programmatic checks that a
135M model can be scored on; IFEval (lm-eval) is English-only and has no EOS check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from finemed.core.config import FinemedError
from finemed.core.texts import heldout_score

Split = Literal["all", "dev", "test"]
SPLIT_SALT = "probe:"  # heldout_score(SPLIT_SALT + task id, SPLIT_SEED) < TEST_FRACTION: the task is test
SPLIT_SEED = 0
TEST_FRACTION = 0.5
SPLIT_RULE = (f"a task (de and en together) is test when heldout_score('{SPLIT_SALT}' + task id, seed {SPLIT_SEED}) "
              f"< {TEST_FRACTION}, else dev")


@dataclass(frozen=True)
class Instruction:
    id: str
    lang: str
    prompt: str
    checks: tuple[str, ...]

    @property
    def task(self) -> str:
        return self.id.rsplit(".", 1)[0]

    @property
    def split(self) -> str:
        return split_of(self.task)


# (task id, German prompt, English prompt, checks); "lang" and "eos" are added where they apply.
_TASKS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("flu_bullets", "Nenne drei Symptome einer Grippe als Stichpunktliste mit genau drei Punkten.",
     "List three symptoms of the flu as a bullet list with exactly three items.", ("bullets:3",)),
    ("hypertension_30w", "Erkläre in höchstens 30 Wörtern, was Bluthochdruck ist.",
     "Explain in at most 30 words what high blood pressure is.", ("lang", "max_words:30")),
    ("water_yes_no", "Antworte nur mit Ja oder Nein: Ist Wasser bei Raumtemperatur flüssig?",
     "Answer only with Yes or No: Is water liquid at room temperature?", ("yes_no", "max_words:2")),
    ("capital_word", "Was ist die Hauptstadt von Deutschland? Antworte mit einem einzigen Wort.",
     "What is the capital of Germany? Answer with a single word.", ("one_word",)),
    ("person_json", 'Gib ein JSON-Objekt mit den Schlüsseln "name" und "alter" für eine erfundene Person zurück. '
     "Nur JSON, kein weiterer Text.",
     'Return a JSON object with the keys "name" and "age" for a made-up person. Only JSON, no other text.',
     ("json",)),
    ("weather_sentence", "Schreibe einen Satz über das Wetter.", "Write one sentence about the weather.",
     ("lang", "sentences:1", "max_words:25")),
    ("fruit_numbered", "Nenne vier Obstsorten als nummerierte Liste.", "Name four fruits as a numbered list.",
     ("numbered:4",)),
    ("sum_number", "Was ist 7 plus 5? Antworte nur mit der Zahl.", "What is 7 plus 5? Answer only with the number.",
     ("number:12",)),
    ("greeting_20w", "Schreibe eine kurze Begrüßung für eine E-Mail an eine Ärztin, höchstens 20 Wörter.",
     "Write a short greeting for an email to a doctor, at most 20 words.", ("lang", "max_words:20")),
    ("exercise_bullets", "Nenne zwei Vorteile von Bewegung als Stichpunkte.",
     "Give two benefits of exercise as bullet points.", ("bullets:2",)),
    ("stethoscope_sentence", "Beschreibe in genau einem Satz, was ein Stethoskop ist.",
     "Describe in exactly one sentence what a stethoscope is.", ("lang", "sentences:1")),
    ("sun_yes_no", "Antworte nur mit Ja oder Nein: Ist die Sonne ein Stern?",
     "Answer only with Yes or No: Is the sun a star?", ("yes_no", "max_words:2")),
    ("upper_word", "Schreibe das Wort 'Gesundheit' in Großbuchstaben und sonst nichts.",
     "Write the word 'health' in capital letters and nothing else.", ("upper",)),
    ("sleep_numbered", "Gib drei Tipps für besseren Schlaf als nummerierte Liste.",
     "Give three tips for better sleep as a numbered list.", ("numbered:3",)),
    ("opposite_word", "Was ist das Gegenteil von 'heiß'? Antworte mit einem Wort.",
     "What is the opposite of 'hot'? Answer with one word.", ("one_word",)),
    ("handwash_40w", "Erkläre in höchstens 40 Wörtern, warum man sich die Hände waschen sollte.",
     "Explain in at most 40 words why you should wash your hands.", ("lang", "max_words:40")),
    ("diagnosis_json", 'Gib ein JSON-Objekt mit dem Schlüssel "diagnose" und einem Beispielwert zurück. Nur JSON.',
     'Return a JSON object with the key "diagnosis" and an example value. Only JSON.', ("json",)),
    ("body_commas", "Nenne fünf Körperteile, durch Kommas getrennt, in einer einzigen Zeile.",
     "Name five body parts, separated by commas, on a single line.", ("comma_list:5",)),
    ("coffee_two", "Schreibe zwei kurze Sätze über Kaffee.", "Write two short sentences about coffee.",
     ("lang", "sentences:2", "max_words:40")),
    ("week_number", "Wie viele Tage hat eine Woche? Antworte nur mit der Zahl.",
     "How many days does a week have? Answer only with the number.", ("number:7",)),
    ("doctor_question", "Formuliere eine Frage, die ein Arzt einem Patienten stellen könnte. Nur die Frage.",
     "Write one question a doctor might ask a patient. Only the question.", ("lang", "ends_q", "max_words:25")),
    ("diabetes_title", "Schreibe einen Titel mit höchstens 6 Wörtern für einen Artikel über Diabetes.",
     "Write a title of at most 6 words for an article about diabetes.", ("max_words:6",)),
    ("colour_bullets", "Nenne drei Farben als Stichpunktliste.", "List three colours as a bullet list.",
     ("bullets:3",)),
    ("fever_summary", "Fasse in einem Satz zusammen: Der Patient hat seit drei Tagen Fieber und Husten und schläft "
     "schlecht.", "Summarise in one sentence: The patient has had a fever and a cough for three days and sleeps "
     "badly.", ("lang", "sentences:1")),
    ("advice_30w", "Gib in höchstens 30 Wörtern einen Rat, wie man sich vor einer Erkältung schützt.",
     "In at most 30 words, give one piece of advice on how to avoid catching a cold.", ("lang", "max_words:30")),

    # --- added for the dev/test split (issue 25 item 2): the same kinds of task and check, new topics ---
    ("cold_bullets", "Nenne zwei Symptome einer Erkältung als Stichpunktliste.",
     "List two symptoms of a cold as a bullet list.", ("bullets:2",)),
    ("ice_yes_no", "Antworte nur mit Ja oder Nein: Ist Eis kalt?", "Answer only with Yes or No: Is ice cold?",
     ("yes_no", "max_words:2")),
    ("fish_yes_no", "Antworte nur mit Ja oder Nein: Können Fische fliegen?",
     "Answer only with Yes or No: Can fish fly?", ("yes_no", "max_words:2")),
    ("heart_word", "Welches Organ pumpt das Blut durch den Körper? Antworte mit einem Wort.",
     "Which organ pumps blood through the body? Answer with one word.", ("one_word",)),
    ("france_word", "Was ist die Hauptstadt von Frankreich? Antworte mit einem einzigen Wort.",
     "What is the capital of France? Answer with a single word.", ("one_word",)),
    ("diff_number", "Was ist 10 minus 4? Antworte nur mit der Zahl.",
     "What is 10 minus 4? Answer only with the number.", ("number:6",)),
    ("product_number", "Was ist 3 mal 3? Antworte nur mit der Zahl.",
     "What is 3 times 3? Answer only with the number.", ("number:9",)),
    ("hours_number", "Wie viele Stunden hat ein Tag? Antworte nur mit der Zahl.",
     "How many hours does a day have? Answer only with the number.", ("number:24",)),
    ("months_number", "Wie viele Monate hat ein Jahr? Antworte nur mit der Zahl.",
     "How many months does a year have? Answer only with the number.", ("number:12",)),
    ("vegetable_numbered", "Nenne drei Gemüsesorten als nummerierte Liste.",
     "Name three vegetables as a numbered list.", ("numbered:3",)),
    ("hospital_numbered", "Nenne zwei Berufe im Krankenhaus als nummerierte Liste.",
     "Name two jobs in a hospital as a numbered list.", ("numbered:2",)),
    ("animals_commas", "Nenne vier Tiere, durch Kommas getrennt, in einer einzigen Zeile.",
     "Name four animals, separated by commas, on a single line.", ("comma_list:4",)),
    ("drinks_commas", "Nenne drei Getränke, durch Kommas getrennt, in einer einzigen Zeile.",
     "Name three drinks, separated by commas, on a single line.", ("comma_list:3",)),
    ("medicine_json", 'Gib ein JSON-Objekt mit den Schlüsseln "medikament" und "dosis" zurück. Nur JSON.',
     'Return a JSON object with the keys "drug" and "dose". Only JSON.', ("json",)),
    ("city_json", 'Gib ein JSON-Objekt mit dem Schlüssel "stadt" und einer deutschen Stadt als Wert zurück. Nur JSON.',
     'Return a JSON object with the key "city" and a German city as its value. Only JSON.', ("json",)),
    ("water_upper", "Schreibe das Wort 'Wasser' in Großbuchstaben und sonst nichts.",
     "Write the word 'water' in capital letters and nothing else.", ("upper",)),
    ("doctor_upper", "Schreibe das Wort 'Arzt' in Großbuchstaben und sonst nichts.",
     "Write the word 'doctor' in capital letters and nothing else.", ("upper",)),
    ("vitamin_sentence", "Erkläre in genau einem Satz, wofür Vitamin C gut ist.",
     "Explain in exactly one sentence what vitamin C is good for.", ("lang", "sentences:1")),
    ("thermometer_sentence", "Beschreibe in genau einem Satz, was ein Thermometer misst.",
     "Describe in exactly one sentence what a thermometer measures.", ("lang", "sentences:1")),
    ("allergy_25w", "Erkläre in höchstens 25 Wörtern, was eine Allergie ist.",
     "Explain in at most 25 words what an allergy is.", ("lang", "max_words:25")),
    ("vaccine_30w", "Erkläre in höchstens 30 Wörtern, wie eine Impfung wirkt.",
     "Explain in at most 30 words how a vaccine works.", ("lang", "max_words:30")),
    ("drink_water_20w", "Erkläre in höchstens 20 Wörtern, warum man genug Wasser trinken sollte.",
     "Explain in at most 20 words why you should drink enough water.", ("lang", "max_words:20")),
    ("pharmacy_question", "Formuliere eine Frage, die ein Patient in der Apotheke stellen könnte. Nur die Frage.",
     "Write one question a patient might ask at a pharmacy. Only the question.", ("lang", "ends_q", "max_words:25")),
    ("nurse_question", "Formuliere eine Frage, die eine Pflegekraft einem Patienten am Morgen stellen könnte. "
     "Nur die Frage.", "Write one question a nurse might ask a patient in the morning. Only the question.",
     ("lang", "ends_q", "max_words:25")),
    ("sleep_title", "Schreibe einen Titel mit höchstens 5 Wörtern für einen Artikel über Schlaf.",
     "Write a title of at most 5 words for an article about sleep.", ("max_words:5",)),
    ("nutrition_title", "Schreibe eine Überschrift mit höchstens 6 Wörtern für einen Text über gesunde Ernährung.",
     "Write a headline of at most 6 words for a text about healthy eating.", ("max_words:6",)),
    ("headache_summary", "Fasse in einem Satz zusammen: Die Patientin hat seit gestern Kopfschmerzen und ihr ist "
     "übel.", "Summarise in one sentence: The patient has had a headache since yesterday and feels sick.",
     ("lang", "sentences:1")),
    ("knee_summary", "Fasse in einem Satz zusammen: Der Patient ist beim Joggen gestürzt, sein Knie ist geschwollen "
     "und tut weh.", "Summarise in one sentence: The patient fell while jogging; his knee is swollen and hurts.",
     ("lang", "sentences:1")),
    ("walking_two", "Schreibe zwei kurze Sätze über Spaziergänge.", "Write two short sentences about walking.",
     ("lang", "sentences:2", "max_words:40")),
    ("tea_two", "Schreibe zwei kurze Sätze über Tee.", "Write two short sentences about tea.",
     ("lang", "sentences:2", "max_words:40")),
    ("stress_bullets", "Nenne drei Wege, Stress abzubauen, als Stichpunktliste.",
     "List three ways to reduce stress as a bullet list.", ("bullets:3",)),
    ("firstaid_bullets", "Nenne zwei Dinge, die in einen Erste-Hilfe-Kasten gehören, als Stichpunkte.",
     "Give two things that belong in a first-aid kit as bullet points.", ("bullets:2",)),
    ("sunscreen_sentence", "Schreibe einen Satz darüber, warum Sonnencreme wichtig ist.",
     "Write one sentence about why sunscreen is important.", ("lang", "sentences:1", "max_words:25")),
    ("spider_number", "Wie viele Beine hat eine Spinne? Antworte nur mit der Zahl.",
     "How many legs does a spider have? Answer only with the number.", ("number:8",)),
    ("opposite_big", "Was ist das Gegenteil von 'groß'? Antworte mit einem Wort.",
     "What is the opposite of 'big'? Answer with one word.", ("one_word",)),
    ("sky_word", "Welche Farbe hat der Himmel an einem klaren Tag? Antworte mit einem Wort.",
     "What colour is the sky on a clear day? Answer with one word.", ("one_word",)),
    ("milk_yes_no", "Antworte nur mit Ja oder Nein: Ist Milch ein Getränk?",
     "Answer only with Yes or No: Is milk a drink?", ("yes_no", "max_words:2")),
    ("teeth_numbered", "Beschreibe in vier nummerierten Schritten, wie man sich die Zähne putzt.",
     "Describe in four numbered steps how to brush your teeth.", ("numbered:4",)),
    ("appointment_20w", "Schreibe eine kurze Nachricht, um einen Arzttermin abzusagen, höchstens 20 Wörter.",
     "Write a short message to cancel a doctor's appointment, at most 20 words.", ("lang", "max_words:20")),
]

_JSON_KEYS = {"person_json": {"de": ("name", "alter"), "en": ("name", "age")},
              "diagnosis_json": {"de": ("diagnose",), "en": ("diagnosis",)},
              "medicine_json": {"de": ("medikament", "dosis"), "en": ("drug", "dose")},
              "city_json": {"de": ("stadt",), "en": ("city",)}}
_UPPER = {"upper_word": {"de": "GESUNDHEIT", "en": "HEALTH"}, "water_upper": {"de": "WASSER", "en": "WATER"},
          "doctor_upper": {"de": "ARZT", "en": "DOCTOR"}}


def split_of(task: str) -> str:
    """``"test"`` or ``"dev"`` for a task id (``flu_bullets``) or an instruction id (``flu_bullets.de``)."""
    task = task.removesuffix(".de").removesuffix(".en")
    return "test" if heldout_score(SPLIT_SALT + task, SPLIT_SEED) < TEST_FRACTION else "dev"


def instructions(split: Split = "all") -> list[Instruction]:
    """The probe instructions (64 tasks × de/en) of ``split`` (``all``, ``dev`` or ``test``), each with its checks
    and ``eos``, in task order."""
    if split not in ("all", "dev", "test"):
        raise FinemedError(f"probe split {split!r}: use all, dev or test")
    out = []
    for task, de, en, checks in _TASKS:
        if split != "all" and split_of(task) != split:
            continue
        for lang, prompt in (("de", de), ("en", en)):
            cs = list(checks)
            if "json" in cs:
                cs[cs.index("json")] = "json:" + ",".join(_JSON_KEYS[task][lang])
            if "upper" in cs:
                cs[cs.index("upper")] = "upper:" + _UPPER[task][lang]
            if "yes_no" in cs:
                cs[cs.index("yes_no")] = "yes_no:" + lang
            out.append(Instruction(f"{task}.{lang}", lang, prompt, tuple(cs) + ("eos",)))
    return out

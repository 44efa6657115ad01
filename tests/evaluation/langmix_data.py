"""Synthetic German answers with known off-language sentence shares, for ``finemed.evaluation.langmix``.

Sources: the bundled SIB-200 (FLORES) sentences in 10 languages besides German (their ``dev`` split is the dev
part, ``test`` the test part), plus HAND-WRITTEN sentences below (written for this test, not from a corpus) in
13 more languages and scripts and German clinical sentences with abbreviations; even positions are dev, odd are
test. Thresholds in langmix were chosen on ``build("dev")`` only; ``build("test")`` is scored at the end.

A source item is one sentence when it holds no sentence terminal followed by a space (or, for 。！？-like
terminals, anywhere) except at its end; multi-sentence SIB items are left out so that the truth is exact.
``python tests/evaluation/langmix_data.py [dev|test]`` prints the table.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

import regex

from finemed.data.loaders import load_sib200

SIB_LANGS = {"dan_Latn": "da", "eng_Latn": "en", "fra_Latn": "fr", "ita_Latn": "it", "nld_Latn": "nl",
             "pol_Latn": "pl", "por_Latn": "pt", "rus_Cyrl": "ru", "spa_Latn": "es", "zho_Hans": "zh"}

# --- HAND-WRITTEN sentences (patient answers to anamnesis questions), not taken from any corpus ---
HAND_WRITTEN: dict[str, list[str]] = {
    "de": [
        "Ich nehme seit ca. zwei Wochen Ibuprofen 400 mg, bzw. bei Bedarf auch mehr.",
        "Mein Hausarzt, Dr. Weber, hat mir z.B. Physiotherapie und Wärme empfohlen.",
        "Die Schmerzen begannen am 3. Mai nach dem Frühstück.",
        "Ich lag damals im Krankenhaus in Zimmer Nr. 12 auf der Inneren Station.",
        "Mein Blutdruck liegt meistens bei ca. 140 zu 90.",
        "Ich vertrage keine Antibiotika, z. B. Penicillin oder Amoxicillin.",
        "Das Cortison war schon die 3. Linie der Therapie.",
        "Ich habe Diabetes mellitus Typ 2 und spritze abends Insulin.",
        "Seit der Operation habe ich ständig Rückenschmerzen im unteren Bereich.",
        "Meine Mutter hatte mit 50 Jahren Brustkrebs, mein Vater hat Bluthochdruck.",
        "Ich trinke keinen Alkohol und rauche seit dem 1. Januar nicht mehr.",
        "Prof. Schmidt hat die Untersuchung, d.h. die Magenspiegelung, im März gemacht.",
    ],
    "lb": [
        "Ech hunn zënter dräi Deeg staark Kappwéi an et gëtt net besser.",
        "Meng Mamm huet Zocker an hëlt all Moien hir Medikamenter.",
        "Ech fëmmen net méi, ech hunn virun zwee Joer opgehalen.",
        "De Mëttwoch war ech beim Dokter, well ech Péng am Bauch hat.",
        "Ech schlofe schlecht an erwächen all Nuecht e puer Mol.",
        "Mäi Papp hat en Häerzinfarkt, wéi hie siechzeg Joer al war.",
        "Ech drénken heiansdo e Glas Wäin um Weekend mat Frënn.",
        "Meng Knéien deie mer wéi, wann ech d'Trap eropginn.",
        "Ech hunn eng Allergie géint Penicillin an och géint Hausstaub.",
        "Mir wunnen zu Esch an ech schaffen an der Stad bei enger Bank.",
        "Ech sinn net sécher, ob ech d'Pëllen richteg geholl hunn.",
        "Zënter e puer Woche sinn ech ëmmer midd an hu keen Appetit.",
    ],
    "nb": [
        "Jeg har hatt vondt i hodet i tre dager, og det blir ikke bedre.",
        "Moren min har diabetes og tar medisinene sine hver morgen.",
        "Jeg sluttet å røyke for to år siden.",
        "Jeg sover dårlig og våkner flere ganger hver natt.",
        "Faren min fikk hjerteinfarkt da han var seksti år gammel.",
        "Jeg drikker av og til et glass vin i helgene.",
        "Knærne mine gjør vondt når jeg går opp trappene.",
        "Jeg er allergisk mot penicillin og husstøv.",
        "De siste ukene har jeg vært veldig sliten og har ikke matlyst.",
        "Legen sa at jeg burde ta blodprøver neste uke.",
    ],
    "sv": [
        "Jag har haft ont i huvudet i tre dagar och det blir inte bättre.",
        "Min mamma har diabetes och tar sin medicin varje morgon.",
        "Jag slutade röka för två år sedan.",
        "Jag sover dåligt och vaknar flera gånger varje natt.",
        "Min pappa fick en hjärtinfarkt när han var sextio år gammal.",
        "Ibland dricker jag ett glas vin på helgerna med vänner.",
        "Mina knän gör ont när jag går uppför trapporna.",
        "Jag är allergisk mot penicillin och mot kvalster.",
        "De senaste veckorna har jag varit väldigt trött och haft dålig aptit.",
        "Läkaren sa att jag skulle ta ett blodprov nästa vecka.",
    ],
    "tr": [
        "Üç gündür şiddetli baş ağrım var ve geçmiyor.",
        "Annemin şeker hastalığı var ve her sabah ilaç alıyor.",
        "İki yıl önce sigarayı bıraktım.",
        "Geceleri kötü uyuyorum ve birkaç kez uyanıyorum.",
        "Babam altmış yaşındayken kalp krizi geçirdi.",
        "Hafta sonları bazen arkadaşlarımla bir kadeh şarap içiyorum.",
        "Merdiven çıkarken dizlerim çok ağrıyor.",
        "Penisiline ve ev tozuna karşı alerjim var.",
        "Son haftalarda çok yorgunum ve hiç iştahım yok.",
        "Doktor gelecek hafta kan tahlili yaptırmam gerektiğini söyledi.",
    ],
    "ca": [
        "Fa tres dies que tinc un mal de cap molt fort i no millora.",
        "La meva mare té diabetis i pren la medicació cada matí.",
        "Vaig deixar de fumar fa dos anys.",
        "Dormo malament i em desperto diverses vegades cada nit.",
        "El meu pare va patir un infart quan tenia seixanta anys.",
        "De vegades prenc una copa de vi el cap de setmana amb els amics.",
        "Em fan mal els genolls quan pujo les escales.",
        "Sóc al·lèrgic a la penicil·lina i a la pols de casa.",
        "Les darreres setmanes estic molt cansat i no tinc gana.",
        "El metge em va dir que em fes una anàlisi de sang la setmana que ve.",
    ],
    "ar": [
        "أعاني من صداع شديد منذ ثلاثة أيام ولا يتحسن.",
        "والدتي مصابة بمرض السكري وتتناول الدواء كل صباح.",
        "توقفت عن التدخين منذ سنتين.",
        "أنام بشكل سيئ وأستيقظ عدة مرات كل ليلة.",
        "أصيب والدي بنوبة قلبية عندما كان في الستين من عمره.",
        "هل يجب أن أتناول هذا الدواء قبل الأكل أم بعده؟",
        "تؤلمني ركبتاي عندما أصعد الدرج.",
        "لدي حساسية من البنسلين ومن غبار المنزل.",
    ],
    "el": [
        "Έχω έντονο πονοκέφαλο εδώ και τρεις μέρες και δεν βελτιώνεται.",
        "Η μητέρα μου έχει διαβήτη και παίρνει φάρμακα κάθε πρωί.",
        "Σταμάτησα το κάπνισμα πριν από δύο χρόνια.",
        "Κοιμάμαι άσχημα και ξυπνάω αρκετές φορές κάθε νύχτα.",
        "Ο πατέρας μου έπαθε έμφραγμα όταν ήταν εξήντα χρονών.",
        "Πρέπει να πάρω αυτό το φάρμακο πριν ή μετά το φαγητό;",
        "Με πονάνε τα γόνατα όταν ανεβαίνω τις σκάλες.",
        "Είμαι αλλεργικός στην πενικιλίνη και στη σκόνη.",
    ],
    "ja": [
        "三日前から頭がひどく痛くて、よくなりません。",
        "母は糖尿病で、毎朝薬を飲んでいます。",
        "二年前にたばこをやめました。",
        "夜はよく眠れず、何度も目が覚めます。",
        "父は六十歳のときに心筋梗塞になりました。",
        "この薬は食前に飲むべきですか、それとも食後ですか？",
        "階段を上るとひざが痛みます。",
        "ペニシリンとハウスダストにアレルギーがあります。",
    ],
    "uk": [
        "Уже три дні у мене сильно болить голова, і краще не стає.",
        "Моя мама хворіє на цукровий діабет і щоранку приймає ліки.",
        "Я кинув палити два роки тому.",
        "Я погано сплю і прокидаюся кілька разів за ніч.",
        "Мій батько переніс інфаркт, коли йому було шістдесят років.",
        "Чи треба приймати ці ліки до їжі чи після?",
        "У мене болять коліна, коли я піднімаюся сходами.",
        "У мене алергія на пеніцилін і на домашній пил.",
    ],
    "hi": [
        "मुझे तीन दिनों से तेज़ सिरदर्द है और यह ठीक नहीं हो रहा है।",
        "मेरी माँ को मधुमेह है और वह हर सुबह दवा लेती हैं।",
        "मैंने दो साल पहले धूम्रपान छोड़ दिया था।",
        "मुझे रात में ठीक से नींद नहीं आती और मैं कई बार जाग जाता हूँ।",
        "मेरे पिता को साठ साल की उम्र में दिल का दौरा पड़ा था।",
        "सीढ़ियाँ चढ़ते समय मेरे घुटनों में दर्द होता है।",
    ],
    "th": [  # Thai marks a sentence end with a space, so no sentence holds one
        "ฉันปวดหัวมากมาสามวันแล้วและยังไม่ดีขึ้น",
        "แม่ของฉันเป็นเบาหวานและกินยาทุกเช้า",
        "ฉันเลิกสูบบุหรี่เมื่อสองปีที่แล้ว",
        "ฉันนอนหลับไม่ดีและตื่นหลายครั้งทุกคืน",
        "พ่อของฉันเป็นโรคหัวใจวายตอนอายุหกสิบปี",
        "ฉันปวดเข่าเวลาเดินขึ้นบันได",
    ],
    "ko": [
        "사흘 전부터 머리가 심하게 아프고 나아지지 않아요.",
        "어머니는 당뇨병이 있어서 매일 아침 약을 드세요.",
        "저는 2년 전에 담배를 끊었어요.",
        "밤에 잠을 잘 못 자고 여러 번 깨요.",
        "아버지는 예순 살 때 심근경색을 앓으셨어요.",
        "계단을 오를 때 무릎이 아파요.",
    ],
    "he": [
        "יש לי כאב ראש חזק כבר שלושה ימים והוא לא משתפר.",
        "אמא שלי חולה בסוכרת ולוקחת תרופות כל בוקר.",
        "הפסקתי לעשן לפני שנתיים.",
        "אני ישן רע ומתעורר כמה פעמים בכל לילה.",
        "אבא שלי עבר התקף לב כשהיה בן שישים.",
        "כואבות לי הברכיים כשאני עולה במדרגות.",
    ],
}

CLOSE = ["lb", "nl", "da", "nb", "sv"]
NON_LATIN = ["zh", "ja", "ar", "el", "uk", "ru", "hi", "th", "ko", "he"]
LATIN = ["en", "fr", "it", "es", "pt", "ca", "pl", "tr"]
ALL = CLOSE + NON_LATIN + LATIN
# (model name, target off-language share, languages its off-language sentences come from)
MODELS = [("m0000_all", 0.0, ALL), ("m0050_close", 0.05, CLOSE), ("m0050_nonlatin", 0.05, NON_LATIN),
          ("m0100_all", 0.1, ALL), ("m0147_close", 0.147, CLOSE), ("m0147_all", 0.147, ALL),
          ("m0250_latin", 0.25, LATIN), ("m0250_nonlatin", 0.25, NON_LATIN), ("m0500_close", 0.5, CLOSE),
          ("m0500_all", 0.5, ALL), ("m1000_close", 1.0, CLOSE), ("m1000_all", 1.0, ALL)]
_FINAL = regex.compile(r"[\p{SB=STerm}\p{SB=ATerm};][\"'”’»)\]]*$")
_INNER_END = regex.compile(r"[\p{SB=STerm}\p{SB=ATerm}…][\"'”’»)\]]*\s")
_WIDE_END = regex.compile(r"[^\x00-\x7f]")


def one_sentence(text: str) -> bool:
    """A source item usable as exactly one sentence (see the module docstring)."""
    text = text.strip()
    final = _FINAL.search(text)
    if final is None:
        return False
    inner = text[:final.start()]
    if _INNER_END.search(inner) or any(regex.match(r"\p{SB=STerm}", c) for c in _WIDE_END.findall(inner)):
        return False
    first = next((c for c in text if c.isalpha()), "")
    return not first.islower()


def pools(split: str) -> dict[str, list[str]]:
    """Language → one-sentence items of the ``dev`` or ``test`` part."""
    out = {code: [s.text for s in load_sib200(name, splits=[split]) if one_sentence(s.text)]
           for name, code in SIB_LANGS.items()}
    out["de"] = [s.text for s in load_sib200("deu_Latn", splits=[split]) if one_sentence(s.text)]
    parity = 0 if split == "dev" else 1
    for code, sents in HAND_WRITTEN.items():
        out.setdefault(code, []).extend(sents[parity::2])
    return out


@dataclass
class Answer:
    model: str
    text: str
    n_sentences: int
    n_off: int


def _join(parts: list[tuple[str, str]], rng: random.Random) -> str:
    style = rng.choice(["space", "space", "newline", "bullets"])
    if style == "bullets":
        return "\n".join(f"- {s}" for _, s in parts)
    text = parts[0][1]
    for (prev_lang, _), (_, s) in zip(parts, parts[1:]):
        if style == "newline":
            text += "\n" + s
        elif prev_lang in ("zh", "ja") and rng.random() < 0.5:
            text += s  # no space after 。 in CJK text
        else:
            text += " " + s
    return text


def build(split: str, n_answers: int = 30, seed: int = 0) -> list[Answer]:
    """``n_answers`` synthetic answers per model in :data:`MODELS`, built from the ``split`` part only."""
    pool = pools(split)
    rng = random.Random(seed)
    answers = []
    for model, share, langs in MODELS:
        for _ in range(n_answers):
            k = rng.randint(3, 8)
            n_off = int(share * k + rng.random())  # stochastic rounding: mean share ≈ target
            single = rng.choice(langs)
            several = rng.random() < 0.5
            parts = [(rng.choice(langs) if several else single, None) for _ in range(n_off)]
            parts += [("de", None)] * (k - n_off)
            rng.shuffle(parts)
            parts = [(lang, rng.choice(pool[lang])) for lang, _ in parts]
            answers.append(Answer(model, _join(parts, rng), k, n_off))
    return answers


def score(answers: list[Answer], measure) -> list[tuple[str, float, float, float]]:
    """Per model: (model, target share, true share, measured share); shares are means over answers and
    ``measure(text) -> share | None`` skips answers it cannot call."""
    out = []
    for model, target, _ in MODELS:
        rows = [a for a in answers if a.model == model]
        truth = sum(a.n_off / a.n_sentences for a in rows) / len(rows)
        got = [m for m in (measure(a.text) for a in rows) if m is not None]
        out.append((model, target, truth, sum(got) / len(got) if got else float("nan")))
    return out


if __name__ == "__main__":
    from finemed.evaluation.langmix import off_language_share

    table = score(build(sys.argv[1] if len(sys.argv) > 1 else "dev"), lambda t: off_language_share(t, "de"))
    print(f"{'model':16s} {'target':>7s} {'truth':>7s} {'measured':>8s} {'|diff|':>7s}")
    for model, target, truth, got in table:
        print(f"{model:16s} {target:7.3f} {truth:7.3f} {got:8.3f} {abs(got - truth):7.3f}")

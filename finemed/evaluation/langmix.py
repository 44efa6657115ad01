"""Language mixing on any script: multilingual sentence segmentation and per-sentence language ID.

Segmentation (:func:`split_sentences`): lines and list bullets first, then sentence terminals by their Unicode
UAX #29 class (``\\p{SB=STerm}`` / ``\\p{SB=ATerm}`` of the ``regex`` module, which transformers already
installs): ``.!?`` and ``。！？｡ ؟ ۔ ؞ । ॥ ։ ። ။ ។ ៕`` …, plus the Greek question mark ``;``/``;`` after a
Greek letter. Non-ASCII terminals (CJK, Arabic, Devanagari …) always end a sentence, so scripts written without
spaces split too; in Thai, Lao, Khmer and Myanmar, which mark sentences with a space, a space next to a letter
of those scripts ends a sentence.
A ``.`` ends one only before a space plus a capital, a non-Latin letter or the end, and not after an
abbreviation: spacy's tokenizer exceptions for the target language (``z.B.``, ``Dr.``, ``ca.``, ``bzw.``,
``Nr.`` …) and a few clinical ones (``Pat.``, ``Tbl.``, ``i.v.`` …), not after a single letter (``z. B.``), and
not after a German ordinal: a 1-2 digit number after an article or ``am``/``zum``/``seit dem`` … (``die 3. Linie``,
``am 3. Mai``), unless the next word is one of spacy's stop words. Why not a library splitter: spacy's
``sentencizer`` splits at every ``.`` (z.B. included) and its parsers are per-language models; ``pysbd`` is not
pinned; nltk's punkt needs data that is not installed. spacy's lists are read from its source files (importing
spacy imports thinc and torch).

Per-sentence language (:func:`call_sentence`), for a target language, in this order:
1. *script*: 4+ letters, most of them outside the target's script → off-language at once, however short (a CJK,
   Arabic, Cyrillic, Greek, Devanagari, Thai … sentence in a German answer).
2. *short*: fewer than ``min_words`` (3) words of 3+ letters (numbers, units, acronyms such as CRP and tokens with
   digits do not count; 2 letters of a script without spaces count as one word) → not called: the sentence counts
   neither as on- nor as off-language, in numerator and denominator alike ("Ja.", "Ibuprofen 400 mg.",
   "CRP 12 mg/l, Leukozyten 11.000/µl.").
3. *lid*: py3langid (all its 97 languages) and pycld2 vote with their top-1 language; both the target → on, both
   another language → off. Both know Luxembourgish, Dutch, Afrikaans, Danish, Norwegian and Swedish.
4. *tie*: where they disagree (or pycld2 abstains), lingua decides among :data:`TIE_BREAK_LANGS` plus the target
   (the close Germanic languages, where lingua is strongest; loaded lazily, once, in seconds).
   A sentence of fewer than :data:`FEW_WORDS` words is off only when all three detectors say so: on 3-4 words
   py3langid and pycld2 often agree on a wrong language ("1-3 Mal pro Monat" → cs) or split
   ("Ja, ich trage ein Piercing." → de/no, lingua: en); 6 such false alarms in GerMedIQ's human German answers.
On the dev part of the synthetic answers (``tests/evaluation/langmix_data.py``) py3langid and pycld2 agreed on
all but one of 1282 sentences (lingua alone, in low-accuracy mode, made 12 errors there; in high-accuracy mode
it takes ~30 s to load 38 languages), so lingua only breaks ties. The rules were fixed on that dev part only.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import regex

# Script each target language is written in (default latin).
TARGET_SCRIPT = {"ru": "cyrillic", "uk": "cyrillic", "bg": "cyrillic", "sr": "cyrillic", "mk": "cyrillic",
                 "be": "cyrillic", "kk": "cyrillic", "zh": "cjk", "ja": "cjk", "ko": "hangul", "el": "greek",
                 "ar": "arabic", "fa": "arabic", "ur": "arabic", "he": "hebrew", "hi": "devanagari",
                 "mr": "devanagari", "ne": "devanagari", "th": "thai", "hy": "armenian", "ka": "georgian"}
FEW_WORDS = 5  # below this many words, off-language needs all three detectors
TIE_BREAK_LANGS = ["de", "en", "nl", "af", "da", "nb", "nn", "sv", "fr"]
# Words before a German ordinal number ("am 3. Mai", "die 3. Linie", "seit dem 1. Januar").
ORDINAL_CUES = {"de": {"der", "die", "das", "dem", "den", "des", "am", "im", "zum", "zur", "vom", "beim", "ab", "bis",
                       "ein", "eine", "einer", "einem", "jeden", "jede", "jeder", "ihr", "ihre", "mein", "meine",
                       "meinem", "seinem", "seine", "sein", "unser", "unsere", "dieser", "diese", "diesem"}}
CLINICAL_ABBREVIATIONS = {"pat.", "tbl.", "tr.", "amp.", "inj.", "i.v.", "i.m.", "s.c.", "p.o.", "re.", "li.", "bds.",
                          "v.a.", "z.n.", "st.p.", "diagn.", "ther.", "tgl.", "ggf.", "bzw.", "ca.", "dr.",
                          "med.", "nr.", "u.a.", "o.b.", "o.ä.", "z.b.", "d.h."}

_TERMINAL = regex.compile(r"(?:[\p{SB=STerm}\p{SB=ATerm}…]+|(?<=\p{Greek}\p{M}*)[;\u037e])[\"'”’»)\]]*")
_NOSPACE = r"[\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]"
_NOSPACE_GAP = regex.compile(rf"(?<={_NOSPACE}\p{{M}}*)\s+|\s+(?={_NOSPACE})")
_BULLET = regex.compile(r"^\s*(?:[-*•·‣◦▪–—>#]+|\(?\d{1,2}[.)]|\(?[a-zA-Z][)])\s+")
_TOKEN = regex.compile(r"[\p{L}\p{M}\p{N}][\p{L}\p{M}\p{N}'’\-]*")
_NOSPACE_CHAR = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]")
_PREV_TOKEN = regex.compile(r"(\S+)$")
_STERM = regex.compile(r"\p{SB=STerm}")
_WORD_MARKS = regex.compile(r"['’\-]")
_FIRST_WORD = regex.compile(r"[\p{L}\p{M}]+")


@lru_cache(maxsize=65536)
def script_of(ch: str) -> str | None:
    """Script of a letter: latin, cjk (Han, kana), cyrillic, greek, arabic, hangul, hebrew, devanagari, thai …
    (the first word of its Unicode name, lower-cased); None for non-letters."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    first = name.split(" ", 1)[0].lower() if name else "other"
    if first in ("cjk", "hiragana", "katakana", "halfwidth") or "IDEOGRAPH" in name:
        return "hangul" if "HANGUL" in name else "cjk"
    return first


def _spacy_strings(lang: str, module: str) -> list[str]:
    """The string literals of ``spacy/lang/LANG/MODULE.py``, read without importing spacy (which imports thinc
    and torch: seconds); [] where spacy has no such file."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        return []
    path = Path(spec.submodule_search_locations[0]) / "lang" / lang / f"{module}.py"
    if not path.is_file():
        return []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@lru_cache(maxsize=16)
def abbreviations(lang: str) -> frozenset[str]:
    """Lower-cased abbreviations (with their final dot) that do not end a sentence in ``lang``: spacy's tokenizer
    exceptions plus :data:`CLINICAL_ABBREVIATIONS`."""
    found = {s.lower() for s in _spacy_strings(lang, "tokenizer_exceptions") if s.endswith(".") and len(s) > 2}
    return frozenset(found | CLINICAL_ABBREVIATIONS)


@lru_cache(maxsize=16)
def stop_words(lang: str) -> frozenset[str]:
    """spacy's stop words of ``lang`` (articles, pronouns, conjunctions …): the words a new sentence starts with."""
    return frozenset(w for s in _spacy_strings(lang, "stop_words") for w in s.split())


def _is_latin_letter(ch: str) -> bool:
    return ch.isalpha() and script_of(ch) == "latin"


def _dot_ends(line: str, start: int, end: int, lang: str) -> bool:
    """Does the ``.``/``…`` run at ``line[start:end]`` end a sentence?"""
    rest = line[end:]
    if not rest.strip():
        return True
    if not rest[0].isspace():
        return rest[0].isalpha() and not _is_latin_letter(rest[0])  # "Ende.我…" yes, "3.5" / "z.B" no
    nxt = rest.lstrip().lstrip("\"'„“‚‘«»([")
    if not nxt:
        return True
    if nxt[0].isalpha() and not _is_latin_letter(nxt[0]):
        return True
    if nxt[0].islower():
        return False
    prev = _PREV_TOKEN.search(line[:start])
    if prev is None:
        return True
    word = prev.group(1).lstrip("\"'„“‚‘«»([")
    if line[start] == "." and (word + ".").lower() in abbreviations(lang):
        return False
    if len(word) == 1 and word.isalpha():  # initials, "z. B."
        return False
    if line[start] == "." and word.isdigit() and len(word) <= 2:  # "am 3. Mai", "die 3. Linie"; not "zu 90. Ich"
        before = _PREV_TOKEN.search(line[:prev.start()].rstrip())
        first = _FIRST_WORD.match(nxt)
        return (before is None or before.group(1).lower() not in ORDINAL_CUES.get(lang, ())
                or bool(first) and first.group(0).lower() in stop_words(lang))
    return True


def _split_line(line: str, lang: str) -> list[str]:
    out, begin = [], 0
    for m in _TERMINAL.finditer(line):
        chars = m.group(0)
        if any(not c.isascii() and _STERM.match(c) for c in chars) or chars[0] in ";\u037e":
            ends = True  # 。！？ ؟ । …: always a boundary, spaces or not
        elif "!" in chars or "?" in chars:
            after = line[m.end():m.end() + 1]
            ends = not after or after.isspace() or (after.isalpha() and not _is_latin_letter(after))
        else:
            ends = _dot_ends(line, m.start(), m.end(), lang)
        if ends:
            out.append(line[begin:m.end()])
            begin = m.end()
    out.append(line[begin:])
    return [p for s in out for p in _NOSPACE_GAP.split(s)]


def split_sentences(text: str, lang: str = "de") -> list[str]:
    """Sentences of ``text`` in any script (see the module docstring); bullets and list numbers removed."""
    out = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if line:
            out.extend(s.strip() for s in _split_line(line, lang) if s.strip())
    return out


def word_count(sentence: str) -> int:
    """Words that carry language: tokens of 3+ letters that are not acronyms and hold no digit, plus one word per
    2 letters of a script written without spaces."""
    n = 0
    for tok in _TOKEN.findall(sentence):
        nospace = len(_NOSPACE_CHAR.findall(tok))
        if nospace:
            n += (nospace + 1) // 2
            continue
        letters = [c for c in tok if c.isalpha()]
        if len(letters) >= 3 and len(letters) == len(_WORD_MARKS.sub("", tok)) and not tok.isupper():
            n += 1
    return n


@dataclass(frozen=True)
class SentenceCall:
    """One sentence's verdict: ``off`` is None when the sentence is too short to call."""

    text: str
    rule: str  # "short", "script", "lid", "tie"
    off: bool | None
    lang: str | None = None  # the detected language (the ensemble's most voted top-1), where known
    p_target: float | None = None


def _letters_by_script(sentence: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ch in sentence:
        s = script_of(ch)
        if s:
            counts[s] = counts.get(s, 0) + 1
    return counts


@lru_cache(maxsize=1)
def _langid():
    from py3langid.langid import _load_identifier

    return _load_identifier(norm_probs=True)


@lru_cache(maxsize=4)
def _lingua(target: str):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [c for c in {*TIE_BREAK_LANGS, target} if hasattr(IsoCode639_1, c.upper())]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*(getattr(IsoCode639_1, c.upper()) for c in codes)).build()


_NORWEGIAN = {"nb": "no", "nn": "no"}


def detector_votes(sentence: str, target: str) -> list[tuple[str, float]]:
    """(top-1 language, P(target)) of py3langid (all its languages) and pycld2 (``und`` when it abstains)."""
    import pycld2

    ranked = _langid().rank(sentence)
    votes = [(_NORWEGIAN.get(ranked[0][0], ranked[0][0]), float(dict(ranked).get(target, 0.0)))]
    try:
        _, _, details = pycld2.detect(sentence, bestEffort=True)
        code = details[0][1] if details[0][1] != "un" else "und"
        votes.append((_NORWEGIAN.get(code, code), sum(d[2] for d in details if d[1] == target) / 100.0))
    except pycld2.error:
        votes.append(("und", 0.0))
    return votes


def tie_break(sentence: str, target: str) -> str | None:
    """lingua's top-1 language among :data:`TIE_BREAK_LANGS` and the target (None where lingua lacks the target)."""
    from lingua import IsoCode639_1

    if not hasattr(IsoCode639_1, target.upper()):
        return None
    values = _lingua(target).compute_language_confidence_values(sentence)
    top = values[0].language.iso_code_639_1.name.lower() if values else target
    return _NORWEGIAN.get(top, top)


def call_sentence(sentence: str, target: str, *, min_words: int = 3) -> SentenceCall:
    """Is ``sentence`` in ``target``? Rules in the module docstring: script → short → detector ensemble."""
    letters = _letters_by_script(sentence)
    total = sum(letters.values())
    own = letters.get(TARGET_SCRIPT.get(target, "latin"), 0)
    if total >= 4 and own * 2 < total:
        foreign = max((s for s in letters if s != TARGET_SCRIPT.get(target, "latin")), key=letters.get)
        return SentenceCall(sentence, "script", True, lang=foreign, p_target=0.0)
    n_words = word_count(sentence)
    if n_words < min_words:
        return SentenceCall(sentence, "short", None)
    votes = detector_votes(sentence, target)
    p_target = sum(p for _, p in votes) / len(votes)
    tops = [code for code, _ in votes if code != "und"]
    if tops and all(code == target for code in tops):
        return SentenceCall(sentence, "lid", False, lang=target, p_target=p_target)
    few = n_words < FEW_WORDS
    if len(tops) == 2 and target not in tops and not few:
        return SentenceCall(sentence, "lid", True, lang=tops[0], p_target=p_target)
    if few and target in tops:  # a split vote on a few words: too little evidence against the target
        return SentenceCall(sentence, "tie", False, lang=target, p_target=p_target)
    lang = tie_break(sentence, target) or (tops[0] if tops else target)
    return SentenceCall(sentence, "tie", lang != target, lang=lang, p_target=p_target)


def off_language_share(text: str, target: str, *, min_words: int = 3) -> float | None:
    """Share of called sentences not in ``target`` (None when no sentence could be called)."""
    calls = [c for c in (call_sentence(s, target, min_words=min_words) for s in split_sentences(text, target))
             if c.off is not None]
    return sum(c.off for c in calls) / len(calls) if calls else None


def foreign_segment_chars(sentence: str, target: str, *, min_words: int = 3, mixed_min_words: int = 12) -> int:
    """Characters of an on-language sentence that are not in ``target``: letters in a foreign script, plus, in a
    sentence of ``mixed_min_words``+ words, lingua's other-language segments that the ensemble also calls off."""
    own = TARGET_SCRIPT.get(target, "latin")
    n = sum(1 for ch in sentence if (s := script_of(ch)) and s != own)
    if word_count(sentence) >= mixed_min_words:
        for seg in _lingua(target).detect_multiple_languages_of(sentence):
            piece = sentence[seg.start_index:seg.end_index]
            if seg.language.iso_code_639_1.name.lower() != target and call_sentence(piece, target,
                                                                                     min_words=min_words).off:
                n += len(piece)
    return min(n, len(sentence))


def known_language(lang: str) -> bool:
    """Can the ensemble call ``lang`` (an ISO 639-1 code py3langid knows)?"""
    return lang in _langid().labels

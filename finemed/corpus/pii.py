"""German PII/PHI de-identification: Presidio pattern recognizers plus German rules, typed placeholders.

Presidio's IBAN (checksum-validated) and IP recognizers run without its spaCy NLP engine (no German
spaCy model offline; its Email recognizer fetches the public-suffix list at run time, so e-mails use a
regex here). Presidio has no German rules for names, dates, phone/fax formats, IDs or addresses, and
without NER names must come from rules, so those are hand-written here:

- titles (Dr. med., Prof. Dr., PD, OA, Univ.-Prof., …) → ``NAME_TITLE``; the capitalised words after a
  title, ``Herr``/``Frau``, ``Patient(in)``, ``Name:`` or a greeting line → ``NAME_*``;
  ``Nachname, Vorname`` / ``Vorname Nachname`` before a birth date (``geb.``, ``*``) → ``NAME_PATIENT``;
- dates (``12.03.2024``, ``3.7.27``, ``8/2023``, ``21/06/1967``, ISO, ``12. März 2024``, years after
  ``seit/im/ED``) → ``DATE``; phone and fax numbers in German/Austrian/Swiss formats → ``CONTACT_*``;
- case/insurance/station/room numbers after their German keywords and long digit runs → ``ID``;
- ``PLZ Ort`` → ``LOCATION_ZIP`` + ``LOCATION_CITY`` (4-digit ZIPs that look like years are skipped);
  ``…straße 12``, ``Kärntner Straße 33``, ``Iris-Leber-Straße 42`` and the line above a ``PLZ Ort`` line →
  ``LOCATION_STREET``; ``45-j.``, ``28-jährige``, ``im Alter von 15``, ``Vater mit 57`` → ``AGE``;
  ``…krankenhaus X``, ``Klinikum X`` → ``LOCATION_HOSPITAL``.

Every detected string is then redacted wherever it recurs in the same doc (a name found once after
``Frau`` is also removed where it stands alone), so no found PHI string survives elsewhere, except where a
surname is also a German word or medical term (:mod:`finemed.corpus.pii_lexicon`): "Frau Dr. Leber" is a
name, "die Leber ist vergrößert" is not. Context guards keep clinical text intact: titles and acronyms
match only as whole words (``COPD`` never yields ``PD``), a bare ``PD``/``OA`` is a title only next to a
name, and ``Apgar 9/10/10``, ``RR 90/60``, ``1-0-1/2`` are no dates. Patterns: :mod:`finemed.corpus.pii_rules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field

from finemed.core.config import StageConfig
from finemed.corpus.pii_lexicon import is_lexical, is_medical
from finemed.corpus.pii_rules import (
    CAP,
    DATE_CUE,
    DOSING,
    HONORIFIC_LEAD,
    INITIAL,
    NAME_CUE,
    NOT_A_NAME,
    NOT_PROPAGATED,
    NOUN_CUE,
    NOUN_SUFFIX,
    RULES,
    TITLE,
    WEAK_ONLY,
    WEAK_TITLE,
)


class PiiConfig(StageConfig):
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)  # LABEL -> placeholder; default "[LABEL]"
    skip_labels: list[str] = Field(default_factory=list)  # e.g. ["URL"] to keep URLs
    propagate: bool = True  # redact every recurrence of a found string in the doc


@dataclass
class Span:
    start: int
    end: int
    label: str


_PRESIDIO: list | None = None
PRESIDIO_LABELS = {"IBAN_CODE": "IBAN", "IP_ADDRESS": "IP_ADDRESS"}


def presidio_spans(text: str, skip: set[str]) -> list[Span]:
    """Presidio's IBAN (checksum-validated) and IP recognizers, run without an NLP engine."""
    global _PRESIDIO
    if _PRESIDIO is None:
        from presidio_analyzer.predefined_recognizers import IbanRecognizer, IpRecognizer

        _PRESIDIO = [IbanRecognizer(supported_language="de"), IpRecognizer(supported_language="de")]
    out = []
    for rec in _PRESIDIO:
        for r in rec.analyze(text, entities=rec.supported_entities, nlp_artifacts=None):
            label = PRESIDIO_LABELS.get(r.entity_type, r.entity_type)
            if label not in skip:
                out.append(Span(r.start, r.end, label))
    return out


def _is_name_word(word: str) -> bool:
    """A capitalised word after a weak title (PD, OA) that may be a surname: no function word, medical term
    or noun-like word ("PD Progression", "OA Visite")."""
    return bool(word) and word not in NOT_A_NAME and not is_medical(word) and not NOUN_SUFFIX.search(word)


def _plausible_date(text: str, before: str) -> bool:
    """Slash/dot dates need a valid day and month and no score context ("Apgar 9/10/10", "RR 90/60", "NRS 7/10")."""
    parts = re.split(r"[./]", text.strip())
    if "/" in text:
        if DATE_CUE.search(before):
            return False
        nums = [int(x) for x in parts if x.isdigit()]
        if len(nums) == 3:
            return 1 <= nums[0] <= 31 and 1 <= nums[1] <= 12
        if len(nums) == 2:
            return 1 <= nums[0] <= 12
    return True


def _keep(label: str, text: str, s: int, e: int) -> bool:
    """Context checks on one rule match; False drops it."""
    if label == "DATE":
        a, b = s, e
        while a > 0 and not text[a - 1].isspace():
            a -= 1
        while b < len(text) and not text[b].isspace():
            b += 1
        if DOSING.fullmatch(text[a:b].rstrip(".,;")):
            return False
        return _plausible_date(text[s:e], text[max(0, s - 30):s])
    if label == "NAME_TITLE":
        if not WEAK_ONLY.match(text[s:e]):
            return True  # Dr., Prof., …: a title on its own
        nxt = re.match(rf"[ \t]+(?:{TITLE}|(?P<w>{CAP}))", text[e:e + 60])
        prev = re.search(rf"({CAP})[ \t]*,?[ \t]*$", text[max(0, s - 60):s])  # "László Kanyuk PhD"
        return (bool(nxt) and (nxt.group("w") is None or _is_name_word(nxt.group("w").split("-")[0]))
                or bool(prev) and _is_name_word(prev.group(1)))
    if label in ("LOCATION_CITY", "LOCATION_ZIP"):  # "6700 Leuko", "5000 IE": a count before a lab/unit word
        word = re.match(r"[\s-]*([A-Za-zÄÖÜäöüß]+)", text[e:e + 40] if label == "LOCATION_ZIP" else text[s:e])
        return not (word and is_medical(word.group(1)))  # not NOUN_SUFFIX: "Konstanz", "Bregenz" are cities
    if label.startswith("NAME_"):
        words = text[s:e].replace(",", " ").split()
        if not words or words[0] in NOT_A_NAME:
            return False
        before = text[max(0, s - 60):s]
        strong = re.search(r"(?i:dr|prof|doz|prim|mag|med)\.[ \t]*$", before)
        if re.search(rf"{WEAK_TITLE}[ \t]*$", before) and not strong:  # "OA Meier" yes, "PD Progression" no
            return all(_is_name_word(w) for w in words if not re.fullmatch(INITIAL, w))
        if not NAME_CUE.search(before) and (all(is_medical(w) for w in words)
                                            or any(NOUN_SUFFIX.search(w) for w in words)):  # "Empfohlene Therapie"
            return False
    return True


def _propagate_here(word: str, text: str, s: int, e: int, name_parts: set[str]) -> bool:
    """Whether a recurrence of found string ``word`` at ``text[s:e]`` is a name (and is to be redacted).

    A word that is not a German common word or medical term is redacted everywhere. "Leber", "Herz", "Kopf"
    are redacted only where they stand as names: after Herr/Frau/a title/a first name, or before ", Vorname";
    a frequent word that is not a medical term ("Weber", "Fischer") also wherever no article or number stands
    before it and it heads no compound ("Weber-B-Fraktur"): for those, a missed name weighs more than a noun.
    """
    if " " in word or not word[:1].isalpha() or not is_lexical(word):
        return True
    before, after = text[max(0, s - 60):s], text[e:e + 40]
    prev = re.search(r"([A-ZÄÖÜ][\w-]*)[ \t]+$", before)
    if NAME_CUE.search(before) or (prev and prev.group(1) in name_parts):
        return True
    nxt = re.match(r",[ \t]*([A-ZÄÖÜ]\w+)", after)
    if nxt and nxt.group(1) in name_parts:
        return True
    if is_medical(word) or NOUN_CUE.search(before) or re.match(r"[-:]", after):
        return False
    return True


def detect(text: str, skip: set[str] | None = None, propagate: bool = True) -> list[Span]:
    """All PII spans, merged (longest first wins on overlap) and, with ``propagate``, every recurrence."""
    skip = skip or set()
    spans: list[Span] = presidio_spans(text, skip)
    for label, rx, group in RULES:
        if label in skip:
            continue
        for m in rx.finditer(text):
            s, e = m.span(group)
            if label.startswith("NAME_") and label != "NAME_TITLE":  # "Patienten Herrn Beat Wankel": from "Beat"
                s += len(HONORIFIC_LEAD.match(text, s).group())
            if s < 0 or e <= s or not _keep(label, text, s, e):
                continue
            spans.append(Span(s, e, label))
    if propagate and spans:
        found = {text[sp.start:sp.end]: sp.label for sp in spans if sp.label not in NOT_PROPAGATED
                 and not re.fullmatch(r"[\d.,/ -]{1,5}", text[sp.start:sp.end])}  # "11.", "21": counts elsewhere
        name_parts: set[str] = set()
        for word_span in list(spans):
            if word_span.label.startswith("NAME_") and word_span.label != "NAME_TITLE":
                for part in re.split(r"[ ,]+", text[word_span.start:word_span.end]):
                    if len(part) >= 3 and part[0].isupper() and part not in NOT_A_NAME:
                        found.setdefault(part, word_span.label)
                        if not is_lexical(part):
                            name_parts.add(part)
        for s_text, label in found.items():
            if len(s_text) < 2:
                continue
            for m in re.finditer(rf"(?<![\w]){re.escape(s_text)}(?![\w])", text):
                if _propagate_here(s_text, text, m.start(), m.end(), name_parts):
                    spans.append(Span(m.start(), m.end(), label))
    return merge_spans(spans)


def merge_spans(spans: list[Span]) -> list[Span]:
    """Union overlapping spans; the merged span keeps the label of its longest member."""
    out: list[Span] = []
    for sp in sorted(spans, key=lambda x: (x.start, -(x.end - x.start))):
        if out and sp.start < out[-1].end:
            last = out[-1]
            if sp.end > last.end:
                label = sp.label if (sp.end - sp.start) > (last.end - last.start) else last.label
                out[-1] = Span(last.start, sp.end, label)
            continue
        out.append(Span(sp.start, sp.end, sp.label))
    return out


def redact(text: str, cfg: PiiConfig | None = None) -> tuple[str, list[Span]]:
    cfg = cfg or PiiConfig()
    spans = detect(text, set(cfg.skip_labels), cfg.propagate)
    parts, pos = [], 0
    for sp in spans:
        parts.append(text[pos:sp.start])
        parts.append(cfg.labels.get(sp.label, f"[{sp.label}]"))
        pos = sp.end
    parts.append(text[pos:])
    return "".join(parts), spans

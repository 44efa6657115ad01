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
  ``LOCATION_STREET``; ``45-j.``, ``28-jährige``, ``im Alter von 15``, ``Vater mit 57`` → ``AGE``; ``…krankenhaus X``, ``Klinikum X`` →
  ``LOCATION_HOSPITAL``.

Every detected string is then redacted wherever it recurs in the same doc (a name found once after
``Frau`` is also removed where it stands alone), so no found PHI string survives elsewhere.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import Field

from finemed.config import StageConfig

CAP = r"(?:[A-ZÄÖÜ][a-zäöüßéèáàóòíìúñçğš]+|[A-ZÄÖÜ]{2,}(?![A-Za-z]))(?:-[A-ZÄÖÜ][a-zäöüßéèáàóòíìúñç]+)?"
INITIAL = r"[A-ZÄÖÜ]\."
NAME = rf"(?:{CAP}|{INITIAL})(?:[ \t]+(?:(?:von|zur|zu|van|de|der)[ \t]+)?(?:{CAP}|{INITIAL}))?"
TITLE = (r"(?:(?:o\.\s?)?Univ\.?[- ]?Prof\.|Priv\.?[- ]?Doz\.|Doz\.|Prof\.|Prim\.|PD\.?|OA|OÄ|FA|DDr\.|Drs\.|Drª|Dr\.?in|"
         r"Dr\.?\s{0,2}med\.?(?:\s?univ(?:ers?)?\.)?|Dra\.|Dr\.a\.|Mag\.|Dr\.med\.(?:univ(?:er)?\.)?|Dr\.|Dipl\.-Med\.|DGKS|DGKP|MSc|Msc|PhD|MD)")
TITLES = rf"{TITLE}(?:[ \t]*{TITLE})*"
MONTHS = r"(?:(?:Jan|Feb|Mär|Apr|Jun|Jul|Aug|Sep|Sept|Okt|Nov|Dez)\.?|Januar|Jänner|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember)"
PHONE = r"(?:\+\d{2}[ \t]?(?:\(0\)[ \t]?)?|\b0)\(?\d{2,5}\)?(?:[ \t]?[/-]?[ \t]?\d{2,}){1,4}(?:-(?:\d+|DW))?"
JOIN = r"(?:am|an der|im|bei|in der)"  # joins the words of a place name: "St. Johann am Bergle"
ZIP = r"(?<![\d.,/])(?:(?:[ADC]H?-)\d{4,5}|\b\d{5}|\b(?!19\d\d|20\d\d)\d{4})\b"  # 4 digits: not a year
NOT_A_NAME = {"Der", "Die", "Das", "Den", "Dem", "Des", "Ein", "Eine", "Mit", "Bei", "Am", "Im", "In", "Zur", "Zum",
              "Und", "Oder", "Von", "Vom", "Ihre", "Ihr", "Sie", "Er", "Es", "Wir", "Patient", "Patientin",
              "Kollege", "Kollegin", "Kollegen", "Sehr", "Liebe", "Lieber", "Befund", "Diagnose", "Diagnosen",
              "Aufnahme", "Therapie", "Station", "Klinik", "Abteilung", "Oberarzt", "Oberärztin", "Chefarzt",
              "Assistenzarzt", "Stationsarzt", "Anamnese", "Datum", "Entlassung", "Geboren", "Grüßen",
              "Freundlichen", "Mit", "Nach", "Vor", "Seit", "Zustand", "Labor", "Unterschrift", "Facharzt"}


NOT_PROPAGATED = {"AGE"}  # a bare number: its recurrences are lab values and doses, not the age


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


def _rx(label: str, pattern: str, group: int | str = 0, flags: int = 0):
    return label, re.compile(pattern, flags), group


RULES = [
    _rx("CONTACT_EMAIL", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    _rx("URL", r"\bhttps?://[^\s/]+/(?:~|user/|users/|profile/|profil/|u/|people/)[^\s]+|\bhttps?://[^\s]*@[^\s]+"),
    _rx("CONTACT_FAX", rf"(?i:fax)[.:]?[ \t]*(?:nr\.?|nummer)?[:.]?[ \t]*(?P<v>{PHONE})", "v"),
    _rx("CONTACT_PHONE", rf"(?i:tel(?:efon)?|handy|mobil|fon|rückruf unter der nummer|nummer|unter)[.:]?[ \t]*(?:nr\.?)?[:.]?[ \t]*(?P<v>{PHONE})", "v"),
    _rx("CONTACT_PHONE", r"(?:\+\d{2}[ \t]?(?:\(0\)[ \t]?)?\(?\d{2,4}\)?[ \t/-]?\d{2,}(?:[ \t/-]?\d{2,}){0,3})"),
    _rx("CONTACT_PHONE", r"\b0\d{2,5}(?:[ \t]?/[ \t]?|-|[ \t])\d{2,}(?:[ -]\d{2,})*\b"),
    _rx("DATE", r"\b\d{4}-\d{2}-\d{2}\b"),
    _rx("DATE", r"\b\d{1,2}\.[ ]?\d{1,2}\.(?:[ ]?\d{4}|\d{2})?(?!\d)"),
    _rx("DATE", r"\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{1,2}/\d{4}\b|\b\d{1,2}/\d{2}\b"),
    _rx("DATE", rf"\b\d{{1,2}}\.?[ ]?{MONTHS}(?:[ ]?\d{{4}})?(?!\w)|\b{MONTHS}[ ]?\d{{4}}\b"),
    _rx("DATE", r"\b\d{1,2}\.\d{1,2}[ ]\d{4}\b|\b\d{1,2}[ ]\d{2}\.\d{4}\b|\b\d{1,2}\.\d{1,2}(?=[ ]?[-–][ ]?\d)"),
    _rx("DATE", rf"\b\d{{1,2}}\.?(?=[ ]*(?:-|–|bis(?:[ ]zum)?|und)[ ]*\d{{1,2}}(?:[./]\d|\.?[ ]?{MONTHS}))"),
    _rx("DATE", rf"\b{MONTHS}[ ]\d{{2}}\b|\b(?:Januar|Jänner|Februar|März|April|Juni|Juli|August|September|Oktober|November|Dezember)\b"),
    _rx("DATE", r"\b(?:19|20)\d{2}\b"),
    _rx("ID", r"(?i:fall[- ]?(?:nr|nummer|zahl)|pat(?:ienten)?[.-]?(?:nr|nummer|id)|piz|sv|vers(?:icherten)?[.-]?nr|"
              r"e-nr|aufn(?:ahme)?[.-]?nr|auftrags?[.-]?nr|befund[.-]?nr|zi(?:mmer)?|station|kh[.-]?nr|akz|"
              r"labor[.-]?nr)[.:]?[ \t]*(?:nr\.?)?[ \t]*(?P<v>[A-Z]{0,3}-?\d[\dA-Z/-]*|[IVX]{1,4}\b)", "v"),
    _rx("ID", r"(?:Intensiv(?:station)?|OP|Saal|Station|Ambulanz)[ \t]+(?P<v>[A-Z]?\d{1,4}[a-z]?|[IVX]{1,4})\b", "v"),
    _rx("ID", r"\b[A-Z]?-?\d{7,}\b|\b\d{4,6}/(?:19|20)\d{2}\b"),
    _rx("ID", r"(?:Onkologie|Chirurgie|Kardiologie|Neurologie|Innere|Medizin|Urologie|Gynäkologie|Pädiatrie)[ \t]+(?P<v>[A-Z]\d{1,3})\b", "v"),
    _rx("ID", r"Station:[^\n]*?[ \t](?P<v>[A-Z])[ \t]*/", "v"),
    _rx("ID", r"(?:Histologie|Histo|H-?Nr\.?:?)[ \t:(]*(?P<v>[A-Z]?\d{3,}[\dA-Za-z]*/\d{2,4})", "v"),
    _rx("LOCATION_STREET", rf"\b(?:{CAP}[- ]?)?(?:[A-ZÄÖÜ][a-zäöüß-]*(?:straße|strasse|str\.|gasse|weg|platz|allee|ring|damm|ufer|kamp)|"
                           rf"Am [A-ZÄÖÜ][a-zäöüß]+|Hauptstr\.)[ \t]*\d{{1,4}}[a-z]?\b"),
    _rx("LOCATION_STREET", rf"\b(?:{CAP}[- ])+(?:Straße|Strasse|Str\.|Gasse|Weg|Platz|Allee|Ring|Damm|Ufer)[ \t]*\d{{1,4}}[a-z]?\b"),
    _rx("LOCATION_STREET", rf"(?m)^[ \t]*(?P<v>(?:Am |An der |Im )?{CAP}(?:[ \t]+\d{{1,4}}[a-z]?)?),?[ \t]*$"
                           rf"(?=\n[ \t]*(?:[ADC]H?-)?\d{{4,5}}[ \t-]+[A-ZÄÖÜ])", "v"),  # the line above "PLZ Ort"
    _rx("AGE", r"\b(?P<v>\d{1,3})(?:[ \t]?-[ \t]?(?=(?i:j\.))|[ \t]?-?[ \t]?(?=(?i:jähr(?!lich)|jahrig|jähir)))", "v"),
    _rx("AGE", r"(?i:im Alter von|Alter:?)[ \t]+(?P<v>\d{1,3})\b", "v"),
    _rx("AGE", r"\b(?:Vater|Mutter|Bruder|Schwester|Großvater|Großmutter|Onkel|Tante)[ \t]+mit[ \t]+(?P<v>\d{1,3})\b"
               r"(?![ \t]*(?:mg|kg|%|mmHg|Jahren? an))", "v"),
    _rx("AGE", r"(?i:\b(?P<v>[a-zäöüß]*(?:zig|ßig|fig|zehn|elf|zwölf|ein|zwei|drei|vier|fünf|sechs|sieben|acht|neun)))"
               r"(?=-?jährige[nr]?[ \t]+(?:Patient|Pat\.|Frau|Mann|Junge|Mädchen|Kind))", "v"),
    _rx("LOCATION_ZIP", ZIP + r"(?=[ \t-]+[A-ZÄÖÜ][a-zäöü])"),
    _rx("LOCATION_CITY", ZIP + rf"[ \t-]+(?P<v>(?:St\.[ \t]*|Sankt[ \t]+|Bad[ \t]+)?{CAP}(?:[ \t]+{JOIN}?[ \t]*{CAP})?(?:[ \t]\([A-Z]{{2}}\))?)", "v"),
    _rx("LOCATION_CITY", rf"(?m)^[ \t]*(?P<v>{CAP}(?:[ \t]{CAP})?),[ \t]*(?:am|den)[ \t]+\d", "v"),
    _rx("LOCATION_CITY", rf"\bwohnhaft (?:in )?(?:[ADC]H?-)?\d{{0,5}}[ -]?(?P<v>{CAP}(?:[ \t]{CAP})?)", "v"),
    _rx("LOCATION_HOSPITAL", rf"\b(?:[A-ZÄÖÜ][a-zäöü]*(?:krankenhaus(?:es)?|klinik(?:um|ums)?|spital)|Krankenhaus|Klinikum|Spital|"
                             rf"Städt\. Klinikum|Praxis)[ \t]+(?!für\b)(?:der[ \t]+|des[ \t]+)?(?:St\.[ \t]*)?{CAP}"
                             rf"(?:[ \t]+(?:{JOIN}[ \t]+)?{CAP})?|"
                             rf"\bPraxis[ \t]+{TITLES}[ \t]+{NAME}|"
                             rf"\b(?:UNIKLINIK|UNIVERSITÄTSKLINIKUM|KLINIKUM|KRANKENHAUS)[ \t]+[A-ZÄÖÜ]{{3,}}\b|"
                             rf"\b(?:{CAP}-)+(?:Spital|Klinik|Klinikum|Krankenhaus|Hospital)(?:[ \t]+{CAP})?"),
    _rx("NAME_TITLE", rf"(?<![\w.]){TITLES}(?![\w])"),
    _rx("NAME_DOCTOR", rf"{TITLES}[ \t]+(?P<v>{NAME}(?:[ \t]+{CAP})?)", "v"),
    _rx("NAME_PATIENT", rf"\b(?:Herrn?|Frau|Fr\.|Hr\.|Patientin|Patienten|Patient|Pat\.|Sohn|Tochter|Ehemann|Ehefrau|Kollegin|Kollege)(?:[ \t]+(?:Kollegin|Kollege|Dr\.|Prof\.))?[ \t]+(?P<v>{CAP},[ \t]*(?!Herrn?\b|Frau\b){CAP}|{NAME})", "v"),
    _rx("NAME_DOCTOR", rf"\b(?:Assistenzärztin|Assistenzarzt|Oberarzt|Oberärztin|Stationsarzt|Stationsärztin|Chefarzt|Chefärztin|FÄ|FA|Drs\.[^\n]{{0,20}}und)[ \t]+(?P<v>{NAME})", "v"),
    _rx("NAME_PATIENT", rf"(?i:name|patient(?:in)?|pat\.)[ \t]*:[ \t]*(?P<v>{CAP},[ \t]*{CAP}|{NAME})", "v"),
    _rx("NAME_PATIENT", rf"(?P<v>{CAP},[ \t]*{CAP}|{CAP}[ \t]+{CAP}(?:[ \t]+{CAP})?)[ \t,]*\(?(?:\*|geb\.|geboren)", "v"),
    _rx("NAME_DOCTOR", rf"(?:Grüßen|Grüssen|gez\.)[ \t,]*\n+[ \t]*(?:{TITLES}[ \t]*)?(?P<v>{NAME})", "v"),
    _rx("NAME_PATIENT", rf"(?m)^[ \t]*(?P<v>{CAP}[ \t]+{CAP})[ \t]*$(?=\n[ \t]*(?:{CAP}[ \t]+\d|Am |[A-ZÄÖÜ][a-zäöüß-]*(?:straße|str\.|gasse|weg|platz)))", "v"),
]


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


def detect(text: str, skip: set[str] | None = None, propagate: bool = True) -> list[Span]:
    """All PII spans, merged (longest first wins on overlap) and, with ``propagate``, every recurrence."""
    skip = skip or set()
    spans: list[Span] = presidio_spans(text, skip)
    for label, rx, group in RULES:
        if label in skip:
            continue
        for m in rx.finditer(text):
            s, e = m.span(group)
            if s < 0 or e <= s:
                continue
            if label.startswith("NAME_") and label != "NAME_TITLE":
                words = text[s:e].replace(",", " ").split()
                if not words or words[0] in NOT_A_NAME:
                    continue
            spans.append(Span(s, e, label))
    if propagate and spans:
        found = {text[sp.start:sp.end]: sp.label for sp in spans if sp.label not in NOT_PROPAGATED}
        for word_span in list(spans):
            if word_span.label.startswith("NAME_") and word_span.label != "NAME_TITLE":
                for part in re.split(r"[ ,]+", text[word_span.start:word_span.end]):
                    if len(part) >= 3 and part[0].isupper() and part not in NOT_A_NAME:
                        found.setdefault(part, word_span.label)
        for s_text, label in found.items():
            if len(s_text) < 2:
                continue
            for m in re.finditer(rf"(?<![\w]){re.escape(s_text)}(?![\w])", text):
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


class PiiRedactor(PipelineStep):
    """Replace PII in ``doc.text`` by typed placeholders; record ``pii_count`` and ``pii_labels``."""

    name = "🔒 PII de-identification"
    type = "🔏 - PII"

    def __init__(self, cfg: PiiConfig | None = None):
        super().__init__()
        self.cfg = cfg or PiiConfig()

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            with self.track_time():
                doc.text, spans = redact(doc.text, self.cfg)
            counts = Counter(sp.label for sp in spans)
            doc.metadata["pii_count"] = len(spans)
            doc.metadata["pii_labels"] = dict(counts)
            self.stat_update("docs")
            self.stat_update("docs_with_pii", value=int(bool(spans)))
            for label, n in counts.items():
                self.stat_update(f"pii_{label}", value=n)
            yield doc

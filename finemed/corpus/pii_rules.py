"""The patterns of the German de-identifier (:mod:`finemed.corpus.pii`): building blocks, the label rules
(``RULES``: label, compiled pattern, group) and the context patterns that accept or drop a match."""

from __future__ import annotations

import re

LOWER = "a-zäöüßéèêëáàâóòôíìîïúùûñçćčğşšžłńøåý"
CAP = rf"(?:[A-ZÄÖÜ][{LOWER}]+|[A-ZÄÖÜ]{{2,}}(?![A-Za-z]))(?:-[A-ZÄÖÜ][{LOWER}]+)?"
INITIAL = r"[A-ZÄÖÜ]\."
PARTICLE = r"(?:von der|van der|von|zur|zu|van|de|der|dos|da|di|del)"
NAME = rf"(?:{CAP}|{INITIAL})(?:[ \t]+{INITIAL})?(?:[ \t]+(?:{PARTICLE}[ \t]+)?(?:{CAP}|{INITIAL}))?"
WORD_START = r"(?<![A-Za-zÄÖÜäöüßéèáà0-9])"  # no letter/digit before: "COPD" never yields "PD"
# acronyms that are also clinical words: a title only next to a name or another title (see pii._keep)
WEAK_TITLE = r"(?:PD\.?|OA|OÄ|FA|DGKS|DGKP|MSc|Msc|PhD|MD)(?![A-Za-zÄÖÜäöüß])"
TITLE = (rf"{WORD_START}(?:(?:o\.\s?)?Univ\.?[- ]?Prof\.|Priv\.?[- ]?Doz\.|Doz\.|Prof\.|Prim\.|{WEAK_TITLE}|"
         r"DDr\.|Drs\.|"
         r"Drª|Dr\.?in|Dr\.?\s{0,2}med\.?(?:\s?univ(?:ers?)?\.)?|Dra\.|Dr\.a\.|Mag\.|Dr\.med\.(?:univ(?:er)?\.)?|Dr\.|"
         r"Dipl\.-Med\.)")
TITLES = rf"{TITLE}(?:[ \t]*{TITLE})*"
MONTH_NAMES = r"Januar|Jänner|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember"
MONTHS = rf"(?:(?:Jan|Feb|Mär|Apr|Jun|Jul|Aug|Sep|Sept|Okt|Nov|Dez)\.?|{MONTH_NAMES})"
PHONE = r"(?:\+\d{2}[ \t]?(?:\(0\)[ \t]?)?|\b0)\(?\d{2,5}\)?(?:[ \t]?[/-]?[ \t]?\d{2,}){1,4}(?:-(?:\d+|DW))?"
JOIN = r"(?:am|an der|im|bei|in der)"  # joins the words of a place name: "St. Johann am Bergle"
ZIP = r"(?<![\d.,/])(?:(?:[ADC]H?-)\d{4,5}|\b\d{5}|\b(?!19\d\d|20\d\d)\d{4})\b"  # 4 digits: not a year
NOT_A_NAME = {"Der", "Die", "Das", "Den", "Dem", "Des", "Ein", "Eine", "Mit", "Bei", "Am", "Im", "In", "Zur", "Zum",
              "Und", "Oder", "Von", "Vom", "Ihre", "Ihr", "Sie", "Er", "Es", "Wir", "Patient", "Patientin",
              "Kollege", "Kollegin", "Kollegen", "Sehr", "Liebe", "Lieber", "Befund", "Diagnose", "Diagnosen",
              "Aufnahme", "Therapie", "Station", "Klinik", "Abteilung", "Oberarzt", "Oberärztin", "Chefarzt",
              "Assistenzarzt", "Stationsarzt", "Anamnese", "Datum", "Entlassung", "Geboren", "Grüßen",
              "Freundlichen", "Mit", "Nach", "Vor", "Seit", "Zustand", "Labor", "Unterschrift", "Facharzt",
              "Herr", "Herrn", "Frau", "Hr", "Fr"}


NOT_PROPAGATED = {"AGE"}  # a bare number: its recurrences are lab values and doses, not the age
# a patient "Kopf", a doctor "Leber": these are names only after Herr/Frau/a title/a first name (see pii.py)


def _rx(label: str, pattern: str, group: int | str = 0, flags: int = 0):
    return label, re.compile(pattern, flags), group


RULES = [
    _rx("CONTACT_EMAIL", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    _rx("URL", r"\bhttps?://[^\s/]+/(?:~|user/|users/|profile/|profil/|u/|people/)[^\s]+|\bhttps?://[^\s]*@[^\s]+"),
    _rx("CONTACT_FAX", rf"(?i:fax)[.:]?[ \t]*(?:nr\.?|nummer)?[:.]?[ \t]*(?P<v>{PHONE})", "v"),
    _rx("CONTACT_PHONE", rf"(?i:tel(?:efon)?|handy|mobil|fon|rückruf unter der nummer|nummer|unter)[.:]?[ \t]*"
                         rf"(?:nr\.?)?[:.]?[ \t]*(?P<v>{PHONE})", "v"),
    _rx("CONTACT_PHONE", r"(?:\+\d{2}[ \t]?(?:\(0\)[ \t]?)?\(?\d{2,4}\)?[ \t/-]?\d{2,}(?:[ \t/-]?\d{2,}){0,3})"),
    _rx("CONTACT_PHONE", r"\b0\d{2,5}(?:[ \t]?/[ \t]?|-|[ \t])\d{2,}(?:[ -]\d{2,})*\b"),
    _rx("DATE", r"\b\d{4}-\d{2}-\d{2}\b"),
    _rx("DATE", r"\b\d{1,2}\.[ ]?\d{1,2}\.(?:[ ]?\d{4}|\d{2})?(?!\d)"),
    _rx("DATE", r"\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{1,2}/\d{4}\b|\b\d{1,2}/\d{2}\b"),
    _rx("DATE", rf"\b\d{{1,2}}\.?[ ]?{MONTHS}(?:[ ]?\d{{4}})?(?!\w)|\b{MONTHS}[ ]?\d{{4}}\b"),
    _rx("DATE", r"\b\d{1,2}\.\d{1,2}[ ]\d{4}\b|\b\d{1,2}[ ]\d{2}\.\d{4}\b|\b\d{1,2}\.\d{1,2}(?=[ ]?[-–][ ]?\d)"),
    _rx("DATE", rf"(?<![-/])\b\d{{1,2}}\.?(?=[ ]*(?:-|–|bis(?:[ ]zum)?|und)[ ]*\d{{1,2}}(?:[./]\d|\.?[ ]?{MONTHS}))"),
    _rx("DATE", rf"\b{MONTHS}[ ]\d{{2}}\b|\b(?:Januar|Jänner|Februar|März|April|Juni|Juli|August|September|Oktober|"
                r"November|Dezember)\b"),
    _rx("DATE", r"\b(?:19|20)\d{2}\b"),
    _rx("ID", r"(?i:fall[- ]?(?:nr|nummer|zahl)|pat(?:ienten)?[.-]?(?:nr|nummer|id)|piz|sv|vers(?:icherten)?[.-]?nr|"
              r"e-nr|aufn(?:ahme)?[.-]?nr|auftrags?[.-]?nr|befund[.-]?nr|zi(?:mmer)?|station|kh[.-]?nr|akz|"
              r"labor[.-]?nr)[.:]?[ \t]*(?:nr\.?)?[ \t]*(?P<v>[A-Z]{0,3}-?\d[\dA-Z/-]*|[IVX]{1,4}\b)", "v"),
    _rx("ID", r"(?:Intensiv(?:station)?|OP|Saal|Station|Ambulanz)[ \t]+(?P<v>[A-Z]?\d{1,4}[a-z]?|[IVX]{1,4})\b", "v"),
    _rx("ID", r"\b[A-Z]?-?\d{7,}\b|\b\d{4,6}/(?:19|20)\d{2}\b"),
    _rx("ID", r"(?:Onkologie|Chirurgie|Kardiologie|Neurologie|Innere|Medizin|Urologie|Gynäkologie|Pädiatrie)[ \t]+"
              r"(?P<v>[A-Z]\d{1,3})\b", "v"),
    _rx("ID", r"Station:[^\n]*?[ \t](?P<v>[A-Z])[ \t]*/", "v"),
    _rx("ID", r"(?:Histologie|Histo|H-?Nr\.?:?)[ \t:(]*(?P<v>[A-Z]?\d{3,}[\dA-Za-z]*/\d{2,4})", "v"),
    _rx("LOCATION_STREET", rf"\b(?:{CAP}[- ]?)?(?:[A-ZÄÖÜ][a-zäöüß-]*"
                           rf"(?:straße|strasse|str\.|gasse|weg|platz|allee|ring|damm|ufer|kamp)|"
                           rf"Am [A-ZÄÖÜ][a-zäöüß]+|Hauptstr\.)[ \t]*\d{{1,4}}[a-z]?\b"),
    _rx("LOCATION_STREET", rf"\b(?:{CAP}[- ])+(?:Straße|Strasse|Str\.|Gasse|Weg|Platz|Allee|Ring|Damm|Ufer)"
                           rf"[ \t]*\d{{1,4}}[a-z]?\b"),
    _rx("LOCATION_STREET", rf"(?m)^[ \t]*(?P<v>(?:Am |An der |Im )?{CAP}(?:[ \t]+\d{{1,4}}[a-z]?)?),?[ \t]*$"
                           rf"(?=\n[ \t]*(?:[ADC]H?-)?\d{{4,5}}[ \t-]+[A-ZÄÖÜ])", "v"),  # the line above "PLZ Ort"
    _rx("AGE", r"\b(?P<v>\d{1,3})(?:[ \t]?-[ \t]?(?=(?i:j\.))|[ \t]?-?[ \t]?(?=(?i:jähr(?!lich)|jahrig|jähir)))", "v"),
    _rx("AGE", r"(?i:im Alter von|Alter:?)[ \t]+(?P<v>\d{1,3})\b", "v"),
    _rx("AGE", r"\b(?:Vater|Mutter|Bruder|Schwester|Großvater|Großmutter|Onkel|Tante)[ \t]+mit[ \t]+(?P<v>\d{1,3})\b"
               r"(?![ \t]*(?:mg|kg|%|mmHg|Jahren? an))", "v"),
    _rx("AGE", r"(?i:\b(?P<v>[a-zäöüß]*(?:zig|ßig|fig|zehn|elf|zwölf|ein|zwei|drei|vier|fünf|sechs|sieben|acht|neun)))"
               r"(?=-?jährige[nr]?[ \t]+(?:Patient|Pat\.|Frau|Mann|Junge|Mädchen|Kind))", "v"),
    _rx("LOCATION_ZIP", ZIP + r"(?=[ \t-]+[A-ZÄÖÜ][a-zäöü])"),
    _rx("LOCATION_CITY", ZIP + rf"[ \t-]+(?![A-Z]{{2}}\b)(?P<v>(?:St\.[ \t]*|Sankt[ \t]+|Bad[ \t]+)?{CAP}"
                               rf"(?:[ \t]+{JOIN}?[ \t]*{CAP})?(?:[ \t]\([A-Z]{{2}}\))?)", "v"),
    _rx("LOCATION_CITY", rf"(?m)^[ \t]*(?P<v>{CAP}(?:[ \t]{CAP})?),[ \t]*(?:am|den)[ \t]+\d", "v"),
    _rx("LOCATION_CITY", rf"\bwohnhaft (?:in )?(?:[ADC]H?-)?\d{{0,5}}[ -]?(?P<v>{CAP}(?:[ \t]{CAP})?)", "v"),
    _rx("LOCATION_HOSPITAL", rf"\b(?:[A-ZÄÖÜ][a-zäöü]*(?:krankenhaus(?:es)?|klinik(?:um|ums)?|spital)|"
                             rf"Krankenhaus|Klinikum|Spital|"
                             rf"Städt\. Klinikum|Praxis)[ \t]+(?!für\b)(?:der[ \t]+|des[ \t]+)?(?:St\.[ \t]*)?{CAP}"
                             rf"(?:[ \t]+(?:{JOIN}[ \t]+)?{CAP})?|"
                             rf"\bPraxis[ \t]+{TITLES}[ \t]+{NAME}|"
                             rf"\b(?:UNIKLINIK|UNIVERSITÄTSKLINIKUM|KLINIKUM|KRANKENHAUS)[ \t]+[A-ZÄÖÜ]{{3,}}\b|"
                             rf"\b(?:{CAP}-)+(?:Spital|Klinik|Klinikum|Krankenhaus|Hospital)(?:[ \t]+{CAP})?"),
    _rx("NAME_TITLE", rf"(?<![\w.]){TITLES}(?![\w])"),
    _rx("NAME_DOCTOR", rf"{TITLES}[ \t]+(?P<v>{NAME}(?:[ \t]+{CAP})?)", "v"),
    _rx("NAME_PATIENT", rf"\b(?:Herrn?|Frau|Fr\.|Hr\.|Patientin|Patienten|Patient|Pat\.|Sohn|Tochter|Ehemann|Ehefrau|"
                        rf"Kollegin|Kollege)(?:[ \t]+(?:Kollegin|Kollege|Dr\.|Prof\.))?[ \t]+"
                        rf"(?P<v>{CAP},[ \t]*(?!Herrn?\b|Frau\b){CAP}|{NAME})", "v"),
    _rx("NAME_DOCTOR", rf"\b(?:Assistenzärztin|Assistenzarzt|Oberarzt|Oberärztin|Stationsarzt|Stationsärztin|Chefarzt|"
                       rf"Chefärztin|FÄ|FA|Drs\.[^\n]{{0,20}}und)[ \t]+(?P<v>{NAME})", "v"),
    _rx("NAME_PATIENT", rf"(?i:name|patient(?:in)?|pat\.)[ \t]*:[ \t]*(?P<v>{CAP},[ \t]*{CAP}|{NAME})", "v"),
    _rx("NAME_PATIENT", rf"(?P<v>{CAP},[ \t]*{CAP}|{CAP}[ \t]+(?:{INITIAL}[ \t]+)?{CAP}(?:[ \t]+{CAP})?)"
                        rf"[ \t,]*\(?(?:\*|geb\.|geboren)", "v"),
    _rx("NAME_DOCTOR", rf"(?:Grüßen|Grüssen|gez\.)[ \t,]*\n+[ \t]*(?:{TITLES}[ \t]*)?"
                       rf"(?P<v>{NAME}(?:[ \t]+{CAP})?)", "v"),
    _rx("NAME_DOCTOR", rf"(?i:geschrieben|diktiert|vidiert|erstellt)[ \t]+(?:von|durch)[ \t]+(?:{TITLES}[ \t]*)?"
                       rf"(?P<v>{NAME})", "v"),
    _rx("NAME_PATIENT", rf"(?m)^[ \t]*(?P<v>{CAP}[ \t]+{CAP})[ \t]*$"
                        rf"(?=\n[ \t]*(?:{CAP}[ \t]+\d|Am |[A-ZÄÖÜ][a-zäöüß-]*(?:straße|str\.|gasse|weg|platz)))", "v"),
]


NAME_CUE = re.compile(rf"(?:(?<![A-Za-zÄÖÜäöüß])(?:Herrn?|Frau|Fr\.|Hr\.)|{TITLE}|(?i:name|pat\.)[ \t]*:)"
                      rf"[ \t]*(?:{CAP}[ \t]+)?$")  # what stands right before a name
NOUN_CUE = re.compile(r"(?:(?<![A-Za-zÄÖÜäöüß])(?i:der|die|das|den|dem|des|ein|eine[mnrs]?|kein\w*|mein\w*|sein\w*|"
                      r"ihre?[mnrs]?|unser\w*|dies\w*|jede[mnrs]?|beide[mnrs]?|im|am|zum|zur|vom|beim|ins|ans|aufs)"
                      r"|\d[\d,.]*)[ \t]+$")  # "die Halle", "im Hof", "2 Weber": a noun (for non-medical words)
HONORIFIC_LEAD = re.compile(r"(?:(?:Herrn?|Frau|Hr\.|Fr\.)[ \t]+)*")
DOSING = re.compile(r"\d{1,2}(?:[,.]\d+)?(?:/\d)?(?:-\d{1,2}(?:[,.]\d+)?(?:/\d)?){2,3}")  # "1-1/2-0", "1/2-0-1/2"
WEAK_ONLY = re.compile(rf"^(?:{WEAK_TITLE}[ \t]*)+$")
DATE_CUE = re.compile(r"(?<![A-Za-zÄÖÜäöüß])(?i:apgar|rr|nrs|vas|gcs|score|punkte|kraft\w*|schmerz\w*|status|blutdruck|"
                      r"zyklus|visus|mmhg|verhältnis|ratio)[\w-]*[ \t:-]*(?:von[ \t]+)?$")


NOUN_SUFFIX = re.compile(r"(?:ung|ion|tät|keit|heit|schaft|logie|pathie|therapie|skopie|gra[pf]hie|tomie|ämie|ose|itis|"
                         r"ismus|ment|anz|enz)$")

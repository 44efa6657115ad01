"""Word lists for the de-identifier and its negative controls, shipped in ``finemed/corpus/pii_data/``.

- :func:`is_lexical`: a capitalised word that is a German common noun or medical term (``Leber``, ``Herz``,
  ``Morbus``, ``COPD``): the bundled medical terms, the vocabulary of the negative set and German words
  that ``wordfreq`` (its data ships in the wheel, so it works offline) rates as frequent.
- :func:`load_negatives`: PHI-free clinical sentences (``clinical_untouched``);
  :func:`load_surname_letters`: letters to "Frau Dr. Leber", "Herr Kopf", … with organ findings.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from finemed.core.config import FinemedError
from finemed.core.logs import get_logger

log = get_logger(__name__)
DATA = Path(__file__).resolve().parent / "pii_data"
COMMON_ZIPF = 3.0  # wordfreq Zipf frequency from which a German word counts as a common word


def load_negatives(path: str | Path | None = None) -> list[str]:
    """Negative-control sentences: a ``.json`` dict of category → sentences (or a list), or a ``.txt`` one a line."""
    path = Path(path) if path else DATA / "negatives.json"
    if not path.is_file():
        raise FinemedError(f"negative-control set {path} is missing; expected a .json or .txt of sentences")
    if path.suffix == ".txt":
        return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.startswith("#")]
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return [str(s) for s in data]
    return [s for k, v in data.items() if not k.startswith("_") for s in v]


def load_surname_letters(path: str | Path | None = None) -> list[dict]:
    """Same-surname letters: dicts with ``id``, ``header``, ``body``, ``footer`` and their ``organs``."""
    path = Path(path) if path else DATA / "surname_letters.json"
    if not path.is_file():
        raise FinemedError(f"same-surname letters {path} are missing")
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["letters"] if isinstance(data, dict) else data


def letter_text(letter: dict) -> str:
    return f"{letter['header']}\n\n{letter['body']}\n\n{letter['footer']}"


@lru_cache(maxsize=1)
def medical_terms() -> frozenset[str]:
    """Bundled medical terms plus every capitalised word of the negative-control sentences."""
    words = {ln.strip() for ln in (DATA / "medical_terms.txt").read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")}
    for sent in load_negatives():
        words.update(w for part in re.findall(r"[A-Za-zÄÖÜäöüßè]+(?:-[A-Za-zÄÖÜäöüßè]+)*", sent)
                     for w in part.split("-") if w[:1].isupper())
    return frozenset(words)


@lru_cache(maxsize=1)
def _zipf():
    try:
        from wordfreq import zipf_frequency
    except ImportError:  # the medical terms alone still guard organ words
        log.warning("wordfreq is not installed: surname propagation uses only the bundled medical terms")
        return None
    return zipf_frequency


@lru_cache(maxsize=8192)
def is_lexical(word: str) -> bool:
    """True when ``word`` is a medical term or a frequent German word (so it may be a noun, not a name)."""
    if word in medical_terms():
        return True
    zipf = _zipf()
    return zipf is not None and zipf(word, "de") >= COMMON_ZIPF


def is_medical(word: str) -> bool:
    """True for the bundled medical terms and negative-set vocabulary (organs, eponyms, acronyms)."""
    return word in medical_terms()

"""The papers' rehearsals share one set-up: a temporary ``$FINEMED_CACHE`` holding a tiny chat model as
``models/smollm2`` (every ``${cache}/models/smollm2`` in a recipe is that stand-in) and a small ``debian-text/``
built from SIB-200 sentences (so ``builtin:debian.*`` needs no `make debian-text`), the working dir moved to the
test's temporary dir, and ``runs/`` under it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.data import debian_text
from finemed.data.loaders import load_sib200
from finemed.models.tiny import save_tiny

SIB = {"en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn", "it": "ita_Latn", "es": "spa_Latn"}


def _write_fake_debian(cache: Path) -> Path:
    """``cache/debian-text/<lang>.jsonl``: SIB-200 sentences of each language, 6 per document."""
    out = cache / "debian-text"
    out.mkdir(parents=True, exist_ok=True)
    for lang, code in SIB.items():
        sents = [s.text for s in load_sib200(code)]
        with open(out / f"{lang}.jsonl", "w", encoding="utf-8") as fh:
            for i in range(0, len(sents), 6):
                doc = f"fake-{lang}/{i}"
                fh.write(json.dumps({"text": " ".join(sents[i:i + 6]), "doc": doc, "package": "fake",
                                     "split": debian_text.split_of(doc)}, ensure_ascii=False) + "\n")
    return out



@pytest.fixture
def write_fake_debian():
    """``write(cache)``: the fake ``debian-text/`` under ``cache``."""
    return _write_fake_debian


@pytest.fixture
def rehearsal_runs(tmp_path: Path, monkeypatch) -> Path:
    """The runs dir of a rehearsal; the cache is ``tmp_path / "cache"``."""
    cache = tmp_path / "cache"
    save_tiny(cache / "models" / "smollm2")
    _write_fake_debian(cache)
    monkeypatch.setenv("FINEMED_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "runs"

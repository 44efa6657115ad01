"""The papers' rehearsals share one set-up: a temporary ``$FINEMED_CACHE`` holding a tiny chat model as
``models/smollm2`` (every ``${cache}/models/smollm2`` in a recipe is that stand-in), the working dir moved to the
test's temporary dir, and ``runs/`` under it."""

from __future__ import annotations

from pathlib import Path

import pytest

from finemed.models.tiny import save_tiny


@pytest.fixture
def rehearsal_runs(tmp_path: Path, monkeypatch) -> Path:
    """The runs dir of a rehearsal; the cache is ``tmp_path / "cache"``."""
    cache = tmp_path / "cache"
    save_tiny(cache / "models" / "smollm2")
    monkeypatch.setenv("FINEMED_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "runs"

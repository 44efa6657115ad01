"""Registered model names (``smollm2``) → their local safetensors dirs, fetched once.

A model argument anywhere in finemed is a registered name or an HF model dir; this module turns it into a
directory, so the loaders, the merge and the recipe's input fingerprints all agree on what a name means.
"""

from __future__ import annotations

from pathlib import Path

from finemed.config import FinemedError
from finemed.models import smollm2

REGISTERED = {name: smollm2.ensure_model for name in smollm2.REGISTERED}


def is_registered(spec: str | Path) -> bool:
    return str(spec) in REGISTERED


def resolve_model_path(spec: str | Path) -> Path:
    """``smollm2`` → the cached safetensors dir (fetching it once); otherwise an existing local HF dir."""
    if is_registered(spec):
        return REGISTERED[str(spec)](str(spec))
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise FinemedError(f"model {spec!r}: not a registered name ({', '.join(REGISTERED)}) and no such "
                           f"directory; pass an HF model dir or run `finemed models fetch smollm2`")
    if not (path / "config.json").is_file():
        raise FinemedError(f"model dir {path} has no config.json; pass an HF model directory")
    return path


def cached_path(spec: str) -> Path | None:
    """The local dir of a registered name if it is already fetched (no download): for fingerprints."""
    if not is_registered(spec):
        return None
    path = smollm2.model_dir(spec)
    return path if path.is_dir() else None

"""Registered model names (``smollm2``) → their local safetensors dirs, fetched once.

A model argument anywhere in finemed is a registered name or an HF model dir; this module turns it into a
directory, so the loaders, the merge and the recipe's input fingerprints all agree on what a name means.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from finemed.core.config import FinemedError
from finemed.core.logs import get_logger
from finemed.models import smollm2

log = get_logger(__name__)

REGISTERED = {name: smollm2.ensure_model for name in smollm2.REGISTERED}


def is_registered(spec: str | Path) -> bool:
    return str(spec) in REGISTERED


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_FILES = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken", "merges.txt", "vocab.txt"]
# Mistral repos ship the same weights twice: HF shards and mistral-inference's consolidated.safetensors (14-48 GB)
HUB_IGNORE = ["consolidated*.safetensors", "consolidated*.pth", "original/*", "*.pth", "*.bin"]
DEFAULT_REVISION = "main"


def split_revision(spec: str, revision: str | None = None) -> tuple[str, str]:
    """``org/name@REV`` or (``org/name``, ``revision``) → (hub id, revision); the default revision is ``main``."""
    if "@" in spec and HUB_ID.match(spec.split("@", 1)[0]):
        spec, rev = spec.split("@", 1)
        if revision and revision != rev:
            raise FinemedError(f"model {spec!r}: revision given twice ({rev!r} in the id, {revision!r} as "
                               f"revision); give one")
        return spec, rev
    return spec, revision or DEFAULT_REVISION


def hub_download(spec: str, revision: str | None = None) -> Path:
    """Download hub model ``spec`` at ``revision`` (a commit hash pins it; ``main`` is logged with the commit it
    resolved to): safetensors and tokenizer files only, never Mistral's duplicate ``consolidated`` weights."""
    from huggingface_hub import snapshot_download

    repo, rev = split_revision(spec, revision)
    path = Path(snapshot_download(repo, revision=rev, allow_patterns=HUB_FILES, ignore_patterns=HUB_IGNORE))
    log.info("model %s@%s: commit %s in %s", repo, rev, path.name, path)  # snapshots/<commit>
    return path


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def resolve_model_path(spec: str | Path, revision: str | None = None) -> Path:
    """``smollm2`` → the cached safetensors dir (fetching it once); a local HF dir; or a hub id (``org/name`` or
    ``org/name@REV``), downloaded once at ``revision`` (safetensors and tokenizer files only) where hub access
    is on."""
    if is_registered(spec):
        return REGISTERED[str(spec)](str(spec))
    path = Path(spec).expanduser()
    if not path.exists() and HUB_ID.match(str(spec).split("@", 1)[0]):
        if hub_offline():
            raise FinemedError(f"model {spec!r} is a hub id but hub access is off (HF_HUB_OFFLINE=1); download it "
                               f"once (`hf download {spec} --local-dir DIR`) and pass DIR, or unset HF_HUB_OFFLINE")
        path = hub_download(str(spec), revision)
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

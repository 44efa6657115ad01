"""Run directories, manifests and atomic writes.

A stage writes only under its own dir ``runs/<recipe>/<stage>/``. Its ``manifest.json`` records the config
hash, fingerprints of its inputs, package versions, start/end times and a status:

- ``incomplete``: written when the stage starts; still there if the process died, so a rerun runs it again.
- ``complete``: the stage finished; a rerun with the same config hash and input fingerprints is ``cached``.
- ``failed``: the stage raised; the error line is kept in the manifest.

All writes go to a temporary sibling and are renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import BaseModel

MANIFEST = "manifest.json"
TRACKED_PACKAGES = ("finemed", "torch", "transformers", "tokenizers", "datasets", "accelerate", "trl",
                    "mergekit", "lm_eval", "datatrove", "sentencepiece", "safetensors", "numpy")
FULL_HASH_LIMIT = 16 << 20  # files above 16 MiB are fingerprinted by size and mtime, not by content


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (file or dir); rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values; NaN and infinities become null (strict JSON has neither)."""
    if isinstance(obj, BaseModel):
        return to_jsonable(obj.model_dump(mode="json"))
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def config_hash(config: BaseModel | dict) -> str:
    data = to_jsonable(config)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    """SHA-256 of a small file's bytes; size plus mtime for a large one (hashing GBs on every run costs minutes)."""
    st = path.stat()
    if st.st_size > FULL_HASH_LIMIT:
        return f"size:{st.st_size}:mtime:{st.st_mtime_ns}"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def producing_manifest(path: Path) -> tuple[Path, "Manifest"] | None:
    """The complete manifest of the stage dir that holds ``path`` (itself or a parent), if any."""
    for cand in (path, *path.parents):
        manifest = read_manifest(cand)
        if manifest is not None:
            return (cand, manifest) if manifest.status in ("complete", "cached") else None
    return None


def fingerprint(path: Path | str) -> str:
    """A file's or a tree's fingerprint: the producing stage's manifest for stage outputs, else file digests."""
    path = Path(path)
    produced = producing_manifest(path.resolve()) if path.exists() else None
    if produced is not None:
        root, manifest = produced
        key = json.dumps([manifest.config_hash, manifest.inputs, manifest.ended, str(path.resolve().relative_to(root))])
        return "stage:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    if path.is_file():
        return hashlib.sha256(_file_digest(path).encode()).hexdigest()[:16]
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            h.update(str(f.relative_to(path)).encode())
            h.update(_file_digest(f).encode())
        return h.hexdigest()[:16]
    return "missing"


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


class Manifest(BaseModel):
    stage: str
    kind: str = ""
    status: str
    config_hash: str
    config: Any = None
    inputs: dict[str, str] = {}
    versions: dict[str, str] = {}
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    result: Any = None
    error: str | None = None


def read_manifest(run_dir: Path) -> Manifest | None:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate(read_json(path))
    except Exception:  # a torn or foreign manifest counts as "never ran"
        return None


def input_fingerprints(inputs: dict[str, Path | str]) -> dict[str, str]:
    return {name: fingerprint(p) for name, p in sorted(inputs.items())}


class StageOutcome(BaseModel):
    stage: str
    status: str  # complete | cached | failed
    seconds: float
    result: Any = None
    error: str | None = None


def run_cached(stage: str, config: BaseModel, run_dir: Path, fn: Callable[[], Any], *,
               inputs: dict[str, Path | str] | None = None, kind: str = "", force: bool = False) -> StageOutcome:
    """Run ``fn`` unless ``run_dir`` holds a complete manifest with the same config hash and inputs.

    ``fn`` returns the stage result (a pydantic model or JSON-able value), stored in the manifest.
    Exceptions are recorded as ``failed`` and re-raised.
    """
    run_dir = Path(run_dir)
    chash = config_hash(config)
    fps = input_fingerprints(inputs or {})
    old = read_manifest(run_dir)
    if (not force and old is not None and old.status in ("complete", "cached")
            and old.config_hash == chash and old.inputs == fps):
        return StageOutcome(stage=stage, status="cached", seconds=0.0, result=old.result)
    run_dir.mkdir(parents=True, exist_ok=True)
    started, t0 = now_iso(), time.perf_counter()
    manifest = Manifest(stage=stage, kind=kind, status="incomplete", config_hash=chash, config=to_jsonable(config),
                        inputs=fps,
                        versions=package_versions(), started=started)
    atomic_write_json(run_dir / MANIFEST, manifest)
    try:
        result = to_jsonable(fn())
    except BaseException as err:
        manifest.status, manifest.ended = "failed", now_iso()
        manifest.seconds = round(time.perf_counter() - t0, 3)
        manifest.error = f"{type(err).__name__}: {err}".splitlines()[0][:500] if str(err) else type(err).__name__
        if isinstance(err, Exception):
            atomic_write_json(run_dir / MANIFEST, manifest)
        raise
    manifest.status, manifest.ended, manifest.result = "complete", now_iso(), result
    manifest.seconds = round(time.perf_counter() - t0, 3)
    atomic_write_json(run_dir / MANIFEST, manifest)
    return StageOutcome(stage=stage, status="complete", seconds=manifest.seconds, result=result)

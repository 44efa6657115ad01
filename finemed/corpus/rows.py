"""Rows of a corpus input for the in-process tools (classifier training, cascade, quality report, annotate).

The one row reader of the corpus package: labelled rows keep every column (``id``, ``text``, ``source``,
``medical``, ...), which :mod:`finemed.texts` (texts only) does not. Files are listed and typed by
:func:`finemed.texts.list_files` / :func:`finemed.texts.file_kind` (a folder with parquet is read for those
only), so a stage's ``metrics.json``/``manifest.json`` beside its shards is never read as data.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Iterator

from finemed.config import FinemedError
from finemed.texts import file_kind, list_files

_COMPRESSED = re.compile(r"\.(gz|zst)$")


def shard_kind(name: str) -> str | None:
    """``parquet``/``jsonl`` (``txt`` too) by suffix; ``.json.gz``/``.jsonl.zst`` count as jsonl."""
    return file_kind(name) or file_kind(_COMPRESSED.sub("", name))


def input_format(path: Path | str) -> str:
    """``parquet`` or ``jsonl`` from a file name or the files in a dir; one clear error otherwise."""
    p = str(path)
    if "://" not in p:
        pp = Path(p)
        if not pp.exists():
            raise FinemedError(f"input {p} does not exist; pass a FineWeb2-schema parquet/jsonl file or dir")
        names = [x.name for x in pp.rglob("*") if x.is_file()] if pp.is_dir() else [pp.name]
    else:
        names = [p]
    kinds = {shard_kind(n) for n in names}
    for kind in ("parquet", "jsonl"):
        if kind in kinds:
            return kind
    raise FinemedError(f"input {p}: no .parquet or .jsonl(.gz) files found; FineWeb2 shards are parquet")


def input_files(path: Path | str) -> list[str]:
    """The data files of a local input (parquet first, as :func:`finemed.texts.list_files`)."""
    return [f for f in list_files(str(path)) if shard_kind(f) in ("parquet", "jsonl")]


def read_rows(path: Path | str, columns: list[str] | None = None) -> Iterator[dict]:
    """Rows of a parquet/jsonl file or dir; bad rows raise one clear line."""
    files = input_files(path)
    if not files:
        raise FinemedError(f"{path}: no input files; pass a parquet/jsonl file or a dir of them")
    for f in files:
        if shard_kind(f) == "parquet":
            import pyarrow.parquet as pq

            try:
                yield from pq.read_table(f, columns=columns).to_pylist()
            except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds
                raise FinemedError(f"{f}: unreadable parquet ({type(err).__name__}); re-export or remove it") from None
            continue
        opener = gzip.open if f.endswith(".gz") else open
        with opener(f, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        raise FinemedError(f"{f}:{lineno}: invalid JSON; fix or remove that line") from None


def count_input_files(path: str) -> int:
    """One datatrove task per input file (1 for a URL or a single file)."""
    p = Path(path)
    if "://" in path or not p.is_dir():
        return 1
    return max(1, len(input_files(p)))

"""Rows of a corpus input for the in-process tools (classifier training, cascade, quality report, annotate).

The one row reader of the corpus package: labelled rows keep every column (``id``, ``text``, ``source``,
``medical``, ...), which :mod:`finemed.core.texts` (texts only) does not. Files are typed by
:func:`finemed.core.texts.file_kind` (a folder with parquet is read for those only; hidden files are skipped),
so a stage's ``metrics.json``/``manifest.json`` beside its shards is never read as data. Inputs are
local paths or any fsspec URL (``s3://``, ``hf://``, ``memory://``, ``file://``) with ``storage_options``.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from finemed.core.config import FinemedError
from finemed.core.texts import file_kind

_COMPRESSED = re.compile(r"\.(gz|zst)$")


def shard_kind(name: str) -> str | None:
    """``parquet``/``jsonl`` (``txt`` too) by suffix; ``.json.gz``/``.jsonl.zst`` count as jsonl."""
    return file_kind(name) or file_kind(_COMPRESSED.sub("", name))


def _fs(path: str, storage_options: dict | None = None):
    """(fsspec filesystem, path on it) for a local path or any fsspec URL (``s3://``, ``hf://``, ``memory://``)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(path, **(storage_options or {}))
    except (ImportError, ValueError) as err:
        raise FinemedError(f"{path}: cannot open this URL ({err}); install its fsspec backend (s3fs for s3://)")


def is_url(path: Path | str) -> bool:
    return "://" in str(path)


def data_files(path: Path | str, storage_options: dict | None = None) -> tuple[object, bool, list[str]]:
    """(fs, is_folder, parquet/jsonl files): of a file, or below a folder (parquet first); local or URL."""
    p = str(path)
    fs, root = _fs(p, storage_options)
    try:
        if fs.isfile(root):
            return fs, False, [root]
        if not fs.isdir(root):
            raise FinemedError(f"input {p} does not exist; pass a FineWeb2-schema parquet/jsonl file or dir")
        names = sorted(f for f in fs.find(root) if not any(
            part.startswith(".") for part in f[len(root.rstrip("/")):].split("/")))
    except OSError as err:
        raise FinemedError(f"input {p}: cannot list it ({type(err).__name__}: {err})") from None
    kinds = {f: shard_kind(f) for f in names}
    for kind in ("parquet", "jsonl"):
        found = [f for f in names if kinds[f] == kind]
        if found:
            return fs, True, found
    return fs, True, []


def input_format(path: Path | str, storage_options: dict | None = None) -> str:
    """``parquet`` or ``jsonl`` from a file name or the files in a dir (local or fsspec URL); one clear error."""
    _, _, files = data_files(path, storage_options)
    kinds = {shard_kind(f) for f in files}
    for kind in ("parquet", "jsonl"):
        if kind in kinds:
            return kind
    raise FinemedError(f"input {path}: no .parquet or .jsonl(.gz) files found; FineWeb2 shards are parquet")


def input_files(path: Path | str, storage_options: dict | None = None) -> list[str]:
    """The data files of an input (parquet first); paths on its filesystem."""
    return data_files(path, storage_options)[2]


def read_rows(path: Path | str, columns: list[str] | None = None,
              storage_options: dict | None = None) -> Iterator[dict]:
    """Rows of a parquet/jsonl file or dir (local or fsspec URL), streamed; ``columns`` limits what parquet
    reads (those present). Bad rows raise one clear line."""
    fs, _, files = data_files(path, storage_options)
    if not files:
        raise FinemedError(f"{path}: no input files; pass a parquet/jsonl file or a dir of them")
    for f in files:
        if shard_kind(f) == "parquet":
            import pyarrow.parquet as pq

            try:
                with fs.open(f, "rb") as fh:  # batch by batch: a shard never has to fit in memory
                    pf = pq.ParquetFile(fh)
                    cols = [c for c in columns if c in pf.schema_arrow.names] if columns else None
                    for batch in pf.iter_batches(batch_size=2048, columns=cols):
                        yield from batch.to_pylist()
            except FinemedError:
                raise
            except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds
                raise FinemedError(f"{f}: unreadable parquet ({type(err).__name__}); re-export or remove it") from None
            continue
        yield from _jsonl_rows(fs, f)


def _jsonl_rows(fs, f: str) -> Iterator[dict]:
    with fs.open(f, "rb") as raw:
        stream = gzip.open(raw) if f.endswith(".gz") else raw
        for lineno, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    raise FinemedError(f"{f}:{lineno}: invalid JSON; fix or remove that line") from None


def _parquet_units(fs, files: list[str], workers: int) -> list[tuple[str, int | None, int]]:
    """(file, row group, rows) of every parquet file, from the footers only (read in parallel)."""
    import pyarrow.parquet as pq

    def footer(f: str) -> list[tuple[str, int | None, int]]:
        try:
            with fs.open(f, "rb") as fh:
                meta = pq.ParquetFile(fh).metadata
        except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds
            raise FinemedError(f"{f}: unreadable parquet ({type(err).__name__}); re-export or remove it") from None
        return [(f, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return [u for units in pool.map(footer, files) for u in units]


def _read_unit(fs, unit: tuple[str, int | None, int], columns: list[str]) -> list[dict]:
    """The rows of one parquet row group (only ``columns``) or of one whole jsonl file (keys cut to ``columns``)."""
    f, group, _ = unit
    if group is None:  # a jsonl file: no random access inside it, so it is read whole
        return [{k: r[k] for k in columns if k in r} for r in _jsonl_rows(fs, f)]
    import pyarrow.parquet as pq

    with fs.open(f, "rb") as fh:
        pf = pq.ParquetFile(fh)
        cols = [c for c in columns if c in pf.schema_arrow.names]
        return pf.read_row_group(group, columns=cols).to_pylist()


def sample_rows(path: Path | str, n: int, *, seed: int = 0, columns: list[str], storage_options: dict | None = None,
                oversample: float = 4.0, workers: int = 8, text_key: str = "text") -> tuple[list[dict], dict]:
    """``n`` rows with text drawn from a random, seeded subset of the input, reading only ``columns``.

    Parquet: the footers give every row group's size; row groups are drawn at random (seeded) until they hold
    ``oversample * n`` rows, read in parallel (only ``columns``), and ``n`` rows are drawn uniformly from those.
    JSONL has no random access: whole files are drawn instead. Rows read stay near ``oversample * n`` (plus one
    row group or file) however large the input is: a cluster sample, not a pass over every row. Returns
    (rows, stats) with ``rows_read``, ``units_read``, ``units_total`` and ``columns``.
    """
    fs, _, files = data_files(path, storage_options)
    if not files:
        raise FinemedError(f"{path}: no input files; pass a parquet/jsonl file or a dir of them")
    rng = random.Random(seed)
    parquet = [f for f in files if shard_kind(f) == "parquet"]
    units = _parquet_units(fs, parquet, workers) + [(f, None, 0) for f in files if f not in parquet]
    rng.shuffle(units)
    chosen, planned = [], 0
    for unit in (u for u in units if u[1] is not None):  # row groups of known size, until they hold enough
        if planned >= oversample * n:
            break
        chosen.append(unit)
        planned += unit[2]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        rows = [r for batch in pool.map(lambda u: _read_unit(fs, u, columns), chosen) for r in batch]
    for unit in (u for u in units if u[1] is None):  # jsonl files, one by one, until they hold enough
        if len(rows) >= oversample * n:
            break
        chosen.append(unit)
        rows += _read_unit(fs, unit, columns)
    rows_read = len(rows)
    rows = [r for r in rows if str(r.get(text_key) or "").strip()]
    picked = sorted(rng.sample(range(len(rows)), min(n, len(rows))))
    sample = [rows[i] for i in picked]
    rng.shuffle(sample)
    return sample, {"rows_read": rows_read, "units_read": len(chosen), "units_total": len(units), "columns": columns}


def check_text_column(path: Path | str, text_key: str, storage_options: dict | None = None) -> None:
    """A parquet input none of whose readable files has ``text_key`` is one line naming the columns found.

    Only parquet footers are read; unreadable files are left to the build, which counts them as skipped."""
    fs, _, files = data_files(path, storage_options)
    found: list[str] | None = None
    for f in (f for f in files if shard_kind(f) == "parquet"):
        import pyarrow.parquet as pq

        try:
            with fs.open(f, "rb") as fh:
                names = pq.ParquetFile(fh).schema_arrow.names
        except Exception:  # noqa: BLE001 - a corrupt file is counted by the build's reader
            continue
        if text_key in names:
            return
        found = found or names
    if found is not None:
        raise FinemedError(f"input {path}: no {text_key!r} column in any parquet file (columns found: "
                           f"{', '.join(found) or 'none'}); set pipeline.text_key to the text column")


def first_row_columns(path: Path | str, storage_options: dict | None = None) -> list[str] | None:
    """The keys of the first readable row of an input (for error messages); None when none is readable."""
    try:
        row = next(iter(read_rows(path, storage_options=storage_options)), None)
    except Exception:  # noqa: BLE001 - best effort, for an error message only
        return None
    return list(row) if isinstance(row, dict) else None


def count_input_files(path: str, storage_options: dict | None = None) -> int:
    """One datatrove task per input file (1 for a single file)."""
    return max(1, len(input_files(path, storage_options)))

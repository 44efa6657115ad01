"""Readers that never lose a doc without a count: datatrove's Parquet/Jsonl readers, hardened.

datatrove's JsonlReader stops a whole file at the first invalid UTF-8 byte and skips non-JSON lines
and text-less rows with only a log line; its ParquetReader crashes the task on a corrupt file. Here
every skipped unit is counted in the step's stats as ``skipped_<reason>`` (``invalid_utf8``,
``invalid_json``, ``not_an_object``, ``missing_text``, ``empty_text``, ``corrupt_parquet``), which the
funnel in ``stats.json`` reports. ``read_rows`` is the same logic for the in-process tools
(classifier training, annotate).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from datatrove.pipeline.readers import JsonlReader, ParquetReader

from finemed.config import FinemedError


class SafeParquetReader(ParquetReader):
    name = "📒 Parquet (counted skips)"

    def read_file(self, filepath: str):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with self.data_folder.open(filepath, "rb") as f:
                with pq.ParquetFile(f) as pqf:
                    li = 0
                    for batch in pqf.iter_batches(batch_size=self.batch_size):
                        for row in batch.to_pylist():
                            doc = self._doc_or_skip(row, filepath, li)
                            li += 1
                            if doc is not None:
                                yield doc
        except (pa.ArrowException, OSError) as err:
            self.stat_update("skipped_corrupt_parquet")
            from loguru import logger

            logger.warning(f"{filepath}: unreadable parquet ({err}); counted as skipped_corrupt_parquet")

    def _doc_or_skip(self, row: dict, filepath: str, li: int):
        text = row.get(self.text_key)
        if self.text_key not in row or text is None:
            self.stat_update("skipped_missing_text")
            return None
        if not str(text).strip():
            self.stat_update("skipped_empty_text")
            return None
        return self.get_document_from_dict(row, filepath, li)


class SafeJsonlReader(JsonlReader):
    name = "🐿 Jsonl (counted skips)"

    def read_file(self, filepath: str):
        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            for li, raw in enumerate(f):
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.stat_update("skipped_invalid_utf8")
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    self.stat_update("skipped_invalid_json")
                    continue
                if not isinstance(row, dict):
                    self.stat_update("skipped_not_an_object")
                    continue
                doc = SafeParquetReader._doc_or_skip(self, row, filepath, li)
                if doc is not None:
                    yield doc


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
    if any(n.endswith(".parquet") for n in names):
        return "parquet"
    if any(n.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".jsonl.zst")) for n in names):
        return "jsonl"
    raise FinemedError(f"input {p}: no .parquet or .jsonl(.gz) files found; FineWeb2 shards are parquet")


def make_reader(path: str, fmt: str | None = None, text_key: str = "text", id_key: str = "id", limit: int = -1):
    fmt = fmt or input_format(path)
    p = Path(path)
    folder, glob = (str(p.parent), p.name) if "://" not in path and p.is_file() else (path, None)
    if glob is None:
        nested = "://" in path or any(x.is_dir() for x in p.iterdir())
        glob = ("**/" if nested else "") + ("*.parquet" if fmt == "parquet" else "*.json*")
    if fmt == "parquet":
        return SafeParquetReader(folder, glob_pattern=glob, text_key=text_key, id_key=id_key, limit=limit)
    return SafeJsonlReader(folder, glob_pattern=glob, text_key=text_key, id_key=id_key, limit=limit)


def read_rows(path: Path | str, columns: list[str] | None = None) -> Iterator[dict]:
    """Rows of a parquet/jsonl file or dir, for in-process tools; bad rows raise one clear line."""
    path = Path(path)
    files = sorted(x for x in path.rglob("*") if x.is_file() and not x.name.startswith(".")) if path.is_dir() else [path]
    if not files:
        raise FinemedError(f"{path}: no input files; pass a parquet/jsonl file or a dir of them")
    for f in files:
        if f.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            try:
                yield from pq.read_table(f, columns=columns).to_pylist()
            except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds
                raise FinemedError(f"{f}: unreadable parquet ({type(err).__name__}); re-export or remove it") from None
        elif ".json" in f.name:
            opener = gzip.open if f.suffix == ".gz" else open
            with opener(f, "rt", encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError:
                            raise FinemedError(f"{f}:{lineno}: invalid JSON; fix or remove that line") from None

"""Readers that never lose a doc without a count: datatrove's Parquet/Jsonl readers, hardened.

datatrove's JsonlReader stops a whole file at the first invalid UTF-8 byte and skips non-JSON lines
and text-less rows with only a log line; its ParquetReader crashes the task on a corrupt file. Here
every skipped unit is counted in the step's stats as ``skipped_<reason>`` (``invalid_utf8``,
``invalid_json``, ``not_an_object``, ``missing_text``, ``empty_text``, ``corrupt_parquet``), which the
funnel in ``stats.json`` reports. :func:`finemed.corpus.rows.read_rows` is the row reader for the
in-process tools (classifier training, annotate); it is re-exported here for older imports.
"""

from __future__ import annotations

import json
import posixpath

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.readers import JsonlReader, ParquetReader

from finemed.corpus.rows import data_files, input_format, read_rows

__all__ = ["RankJsonlReader", "SafeJsonlReader", "SafeParquetReader", "input_format", "make_reader", "read_rows"]


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


def make_reader(path: str, fmt: str | None = None, text_key: str = "text", id_key: str = "id", limit: int = -1,
                storage_options: dict | None = None):
    """The counted-skips reader of a file or folder, local or any fsspec URL (datatrove's ``DataFolder``)."""
    fs, is_folder, files = data_files(path, storage_options)
    fmt = fmt or input_format(path, storage_options)
    root = fs._strip_protocol(path).rstrip("/") if is_folder else posixpath.dirname(files[0])
    if is_folder:
        rel = [f[len(root) + 1:] for f in files]
        glob = ("**/" if any("/" in r for r in rel) else "") + ("*.parquet" if fmt == "parquet" else "*.json*")
    else:
        glob = posixpath.basename(files[0])
    folder = root if is_local(fs) else (fs.unstrip_protocol(root), dict(storage_options or {}))
    cls = SafeParquetReader if fmt == "parquet" else SafeJsonlReader
    return cls(folder, glob_pattern=glob, text_key=text_key, id_key=id_key, limit=limit)


def is_local(fs) -> bool:
    return "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol)


class RankJsonlReader(JsonlReader):
    """Reads ``<folder>/<rank>.jsonl`` of a stage run with the same task count (nothing if that rank kept no doc)."""

    name = "🐿 Jsonl (this rank's file)"

    def __init__(self, folder: str):
        super().__init__(folder, compression=None)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        path = f"{rank:05d}.jsonl"
        if self.data_folder.exists(path):
            yield from self.read_files_shard([path])

"""Training text for tokenizers: named bundled sources or files, streamed, with a byte budget per language.

A source is a string:

- ``sib200:LANG[:SPLIT]`` – SIB-200/FLORES sentences (default split ``train``; ``all`` for every split);
- ``xquad:L`` – the XQuAD contexts in L (``de``, ``en``, ``es``); ``xquad-questions:L`` – its questions;
- ``fortunes_de`` – the bundled German fortunes;
- a path: ``.txt`` (one line per text), ``.jsonl``/``.jsonl.gz`` (field ``text``), ``.parquet`` or a folder of
  those (e.g. the corpus stage's run folder: when a folder holds parquet files, only those are read).
  ``PATH#field`` picks another field.

Files are streamed (line by line, parquet batch by batch), so a big corpus costs only the budget read.
Within a language, sources are read round-robin, one text each, so a budget smaller than the total
still mixes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from finemed.data.loaders import iter_jsonl_field
from finemed.config import FinemedError

FOLDER_SUFFIXES = (".txt", ".jsonl", ".jsonl.gz", ".parquet")


def _bundled(spec: str) -> Iterator[str] | None:
    kind, _, rest = spec.partition(":")
    if kind == "sib200":
        from finemed.data.loaders import SIB_SPLITS, load_sib200

        lang, _, split = rest.partition(":")
        splits = SIB_SPLITS if split == "all" else (split or "train",)
        if any(s not in SIB_SPLITS for s in splits):
            raise FinemedError(f"source {spec!r}: unknown SIB-200 split {split!r}; use train, dev, test or all")
        return (s.text for s in load_sib200(lang, splits=splits))
    if kind in ("xquad", "xquad-questions"):
        from finemed.data.loaders import load_squad

        if rest not in ("de", "en", "es"):
            raise FinemedError(f"source {spec!r}: XQuAD is bundled in de, en and es only")
        examples = load_squad(name=f"xquad.{rest}")
        if kind == "xquad":
            return iter(dict.fromkeys(e.context for e in examples))
        return (e.question for e in examples)
    if spec == "fortunes_de":
        from finemed.data.loaders import load_fortunes

        return (d.text for d in load_fortunes())
    return None


def _iter_file(path: Path, field: str) -> Iterator[str]:
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if field not in pf.schema_arrow.names:
            raise FinemedError(f"{path}: no column {field!r} (has {', '.join(pf.schema_arrow.names)}); use PATH#column")
        for batch in pf.iter_batches(columns=[field], batch_size=1024):
            yield from (t for t in batch.column(0).to_pylist() if t)
    elif name.endswith((".jsonl", ".jsonl.gz", ".json")):
        yield from iter_jsonl_field(path, field, "use PATH#field to pick another", skip_empty=True)
    elif name.endswith(".txt") or "." not in name:
        with open(path, encoding="utf-8") as fh:
            yield from (line.rstrip("\n") for line in fh if line.strip())
    else:
        raise FinemedError(f"{path}: unsupported text format; use .txt, .jsonl (field 'text'), .parquet or a folder")


def iter_source(spec: str) -> Iterator[str]:
    """Texts of one source string (see the module docstring)."""
    bundled = _bundled(spec)
    if bundled is not None:
        return bundled
    raw, _, field = spec.partition("#")
    path = Path(raw).expanduser()
    if not path.exists():
        raise FinemedError(f"source {spec!r}: no such file or folder, and not a bundled source "
                           f"(sib200:LANG, xquad:L, xquad-questions:L, fortunes_de)")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(FOLDER_SUFFIXES)
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        parquet = [f for f in files if f.name.endswith(".parquet")]
        files = parquet or files  # a corpus stage folder: its parquet output, not its sample/stats files
        if not files:
            raise FinemedError(f"source {spec!r}: folder has no .txt/.jsonl/.parquet files")
        return (t for f in files for t in _iter_file(f, field or "text"))
    return _iter_file(path, field or "text")


def round_robin(iterators: Iterable[Iterator[str]]) -> Iterator[str]:
    active = list(iterators)
    while active:
        for it in list(active):
            item = next(it, None)
            if item is None:
                active.remove(it)
            else:
                yield item


def take_budget(texts: Iterable[str], max_bytes: int) -> tuple[list[str], int]:
    """Texts until ``max_bytes`` UTF-8 bytes; the last one is cut (at a line) so the budget holds."""
    out, used = [], 0
    for text in texts:
        text = text.strip()
        if not text:
            continue
        size = len(text.encode("utf-8"))
        if used + size > max_bytes:
            rest = text.encode("utf-8")[: max_bytes - used].decode("utf-8", errors="ignore")
            if rest.strip():
                out.append(rest)
                used += len(rest.encode("utf-8"))
            break
        out.append(text)
        used += size
    return out, used


def language_texts(sources: list[str], max_bytes: int) -> tuple[list[str], int]:
    """Round-robin over a language's sources up to its byte budget."""
    return take_budget(round_robin(iter_source(s) for s in sources), max_bytes)


def training_lines(texts: Iterable[str]) -> Iterator[str]:
    """One line per paragraph (what SentencePiece trains on); blank lines dropped."""
    for text in texts:
        for line in text.split("\n"):
            if line.strip():
                yield line.strip()

"""The one text-source grammar, and the deterministic held-out split every stage shares.

A text source is a string:

- ``builtin:NAME[@SPLIT][#FIELD]``: a bundled set (see :data:`BUILTINS`; ``finemed texts`` lists them), e.g.
  ``builtin:medical``, ``builtin:fortunes_de``, ``builtin:xquad.de`` (contexts), ``builtin:xquad.de#question``,
  ``builtin:sib200.deu_Latn@dev`` (split ``train``/``dev``/``test``/``all``; default ``train``);
- ``hf:DATASET[:CONFIG][@SPLIT][#FIELD]``: a hub dataset or a local dataset dir, streamed with ``datasets``;
- a local path or any fsspec URL (``s3://``, ``hf://``, ``memory://``, ``file://``, ...) to a file or a folder
  of ``.jsonl``/``.jsonl.gz``/``.parquet``/``.txt`` files, with ``#FIELD`` to pick another field than ``text``.
  A folder that holds parquet files is read for those only (a corpus stage's ``output/``).

One ``.txt`` rule everywhere: a text is a block of non-blank lines; blank lines separate texts.
Everything streams (jsonl line by line, parquet batch by batch), so a corpus larger than RAM costs only
what is read. Written here because the sources mix bundled research sets, hub datasets and fsspec files,
which no single library reader covers; the readers underneath are pyarrow, fsspec and ``datasets``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from pydantic import Field

from finemed.core.config import FinemedError, StageConfig
from finemed.data import debian_text, loaders

SUFFIXES = {".jsonl.gz": "jsonl", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".txt": "txt",
            ".md": "txt"}


class TextSet(StageConfig):
    """A text source in a config: ``source`` in the grammar above, at most ``max_docs`` texts."""

    source: str
    max_docs: int | None = Field(default=None, ge=1)


def general_eval_default() -> dict[str, TextSet]:
    """The general-language held-out sets CPT and the merge sweep watch by default (German and English)."""
    return {"general_de": TextSet(source="builtin:fortunes_de", max_docs=150),
            "general_en": TextSet(source="builtin:xquad.en", max_docs=12)}


@dataclass(frozen=True)
class Builtin:
    description: str
    read: Callable[[str, str], Iterable[str]]  # (split, field) -> texts
    splits: tuple[str, ...] = ()


def _unique(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _squad(name: str) -> Callable[[str, str], Iterable[str]]:
    def read(split: str, field: str) -> Iterable[str]:
        examples = loaders.load_squad(name=name)
        if field in ("text", "context"):
            return _unique(e.context for e in examples)
        if field == "question":
            return [e.question for e in examples]
        raise FinemedError(f"builtin:{name}#{field}: SQuAD-style sets have fields context (default) and question")
    return read


def _sib(lang: str) -> Callable[[str, str], Iterable[str]]:
    def read(split: str, field: str) -> Iterable[str]:
        splits = loaders.SIB_SPLITS if split == "all" else (split or "train",)
        return [s.text for s in loaders.load_sib200(lang, splits=splits)]
    return read


BUILTINS: dict[str, Builtin] = {
    "medical": Builtin("German medical text: GraSCCo letters + GerMedBench case texts",
                       lambda s, f: [d.text for d in loaders.medical_documents()]),
    "grascco": Builtin("GraSCCo German clinical letters", lambda s, f: [d.text for d in loaders.load_grascco()]),
    "germedbench": Builtin("GerMedBench case texts", lambda s, f: [
        d.text for d in loaders.medical_documents() if d.source.startswith("germedbench")]),
    "fortunes_de": Builtin("general German (Debian fortunes-de)",
                           lambda s, f: [d.text for d in loaders.load_fortunes()]),
    "xquad.de": Builtin("XQuAD German Wikipedia contexts (#question: questions)", _squad("xquad.de")),
    "xquad.en": Builtin("XQuAD English Wikipedia contexts (#question: questions)", _squad("xquad.en")),
    "xquad.es": Builtin("XQuAD Spanish Wikipedia contexts (#question: questions)", _squad("xquad.es")),
    "mlqa.de": Builtin("MLQA de-de dev contexts (#question: questions)", _squad("mlqa.de")),
}
SIB_PREFIX = "sib200."
DEBIAN_PREFIX = "debian."


def builtin_names() -> list[str]:
    return [*BUILTINS, f"{SIB_PREFIX}LANG (e.g. {SIB_PREFIX}deu_Latn@dev)",
            f"{DEBIAN_PREFIX}LANG|mix (en/de/fr/it/es, @train|heldout|all; `make debian-text`)"]


def _split_spec(spec: str) -> tuple[str, str, str]:
    """``NAME@SPLIT#FIELD`` → (NAME, SPLIT, FIELD); the field defaults to ``text``."""
    head, _, field = spec.partition("#")
    name, _, split = head.partition("@")
    return name, split, field or "text"


def _iter_builtin(spec: str) -> Iterable[str]:
    name, split, field = _split_spec(spec)
    if name.startswith(DEBIAN_PREFIX):  # Debian man pages + fortunes, fetched at setup (finemed.data.debian_text)
        return debian_text.read(name[len(DEBIAN_PREFIX):], split)
    if name.startswith(SIB_PREFIX):
        if split and split not in (*loaders.SIB_SPLITS, "all"):
            raise FinemedError(f"builtin:{spec}: unknown SIB-200 split {split!r}; use train, dev, test or all")
        return _sib(name[len(SIB_PREFIX):])(split, field)
    if name not in BUILTINS:
        raise FinemedError(f"builtin:{name}: unknown bundled text set; use one of {', '.join(builtin_names())}")
    return BUILTINS[name].read(split, field)


def file_kind(name: str) -> str | None:
    lower = name.lower()
    return next((kind for suffix, kind in SUFFIXES.items() if lower.endswith(suffix)), None)


def _open_fs(url: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise FinemedError(f"{url}: cannot open this URL ({err}); install the fsspec backend for it") from None


def list_files(url: str) -> list[str]:
    """The text files a path or URL names: itself, or the supported files below a folder (parquet first)."""
    fs, path = _open_fs(url)
    try:
        if fs.isfile(path):
            return [path]
        if not fs.isdir(path):
            raise FinemedError(f"text source {url!r}: no such file or folder; pass a path, an fsspec URL, "
                               f"builtin:NAME ({', '.join(BUILTINS)}) or hf:DATASET")
        files = sorted(p for p in fs.find(path) if file_kind(p) and not any(
            part.startswith(".") for part in p[len(path):].split("/")))
    except FinemedError:
        raise
    except OSError as err:
        raise FinemedError(f"text source {url!r}: cannot list it ({type(err).__name__}: {err})") from None
    parquet = [f for f in files if file_kind(f) == "parquet"]
    if not (parquet or files):
        raise FinemedError(f"text source {url!r}: folder has no .jsonl/.jsonl.gz/.parquet/.txt files")
    return parquet or files


def iter_txt_blocks(lines: Iterable[str]) -> Iterator[str]:
    """The one ``.txt`` rule: blocks of non-blank lines, separated by blank lines."""
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line.rstrip("\n"))
        elif block:
            yield "\n".join(block)
            block = []
    if block:
        yield "\n".join(block)


def iter_file(fs, path: str, field: str = "text") -> Iterator[str]:
    """Texts of one file on an fsspec filesystem (``fsspec.filesystem("file")`` for local files)."""
    kind = file_kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        with fs.open(path, "rb") as fh:
            try:
                pf = pq.ParquetFile(fh)
            except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds for a corrupt file
                raise FinemedError(f"{path}: unreadable parquet ({type(err).__name__}: {err}); re-export or "
                                   f"remove it") from None
            if field not in pf.schema_arrow.names:
                raise FinemedError(f"{path}: parquet has no column {field!r} (has {', '.join(pf.schema_arrow.names)});"
                                   f" use PATH#column")
            for batch in pf.iter_batches(columns=[field], batch_size=1024):
                yield from (str(t) for t in batch.column(0).to_pylist() if t is not None)
        return
    if kind not in ("jsonl", "txt"):
        raise FinemedError(f"{path}: unsupported text format; use .jsonl (field {field!r}), .jsonl.gz, .parquet "
                           f"or .txt")
    try:
        yield from _iter_text_lines(fs, path, kind, field)
    except UnicodeDecodeError as err:
        raise FinemedError(f"{path}: not UTF-8 text ({err.reason}); save it as UTF-8") from None


def _iter_text_lines(fs, path: str, kind: str, field: str) -> Iterator[str]:
    with fs.open(path, "rb") as raw:
        stream = gzip.open(raw) if path.endswith(".gz") else raw
        lines = io.TextIOWrapper(stream, encoding="utf-8")
        if kind == "txt":
            yield from iter_txt_blocks(lines)
            return
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise FinemedError(f"{path}:{lineno}: invalid JSON ({err.msg}); fix or remove that line") from None
            if not isinstance(row, dict) or field not in row:
                found = ", ".join(row) if isinstance(row, dict) else f"a JSON {type(row).__name__}"
                raise FinemedError(f"{path}:{lineno}: no {field!r} field (found: {found or 'none'}); every row "
                                   f"needs one (or use PATH#field)")
            if row[field] is not None:
                yield str(row[field])


def _iter_hf(spec: str, seed: int | None = None, shuffle_buffer: int = 10_000) -> Iterator[str]:
    from datasets import load_dataset

    head, _, field = spec.partition("#")
    name, _, split = head.partition("@")
    name, _, cfg = name.partition(":")
    field = field or "text"
    try:
        ds = load_dataset(name, cfg or None, split=split or "train", streaming=True)
    except Exception as err:  # noqa: BLE001 - datasets raises many types; the user needs one line
        raise FinemedError(f"hf:{spec}: cannot open dataset ({type(err).__name__}: {str(err)[:120]}); "
                           f"check the name, or download it first (offline mode is on)") from None
    if seed is not None:  # datasets' own sampling: shuffled shard order plus a shuffle buffer
        ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer)
    for row in ds:
        if field not in row:
            raise FinemedError(f"hf:{spec}: rows have no {field!r} field (have {', '.join(row)}); use #FIELD")
        yield str(row[field])


def _iter_source(spec: str, seed: int | None = None, shuffle_buffer: int = 10_000) -> Iterator[str]:
    if spec.startswith("builtin:"):
        yield from _iter_builtin(spec[len("builtin:"):])
    elif spec.startswith("hf:"):
        yield from _iter_hf(spec[3:], seed, shuffle_buffer)
    else:
        url, _, field = spec.partition("#")
        fs, _ = _open_fs(url)
        for path in list_files(url):
            yield from iter_file(fs, path, field or "text")


def iter_texts(spec: str, max_docs: int | None = None, *, seed: int | None = None,
               shuffle_buffer: int = 10_000) -> Iterator[str]:
    """Non-blank texts of ``spec``, lazily, at most ``max_docs``.

    ``seed``: an ``hf:`` stream is shuffled by ``datasets`` (shard order and a buffer of ``shuffle_buffer`` rows)."""
    count = 0
    for text in _iter_source(spec, seed, shuffle_buffer):
        if text.strip():
            yield text
            count += 1
            if max_docs is not None and count >= max_docs:
                return


def read_texts(spec: str, max_docs: int | None = None) -> list[str]:
    return list(iter_texts(spec, max_docs))


# ---------------------------------------------------------------------------------------------- held out
def heldout_score(text: str, seed: int = 0) -> float:
    """A stable pseudo-random number in [0, 1) for ``text``: the basis of every held-out split."""
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_heldout(texts: Iterable[str], fraction: float, seed: int = 0,
                  max_heldout: int | None = None) -> tuple[list[str], list[str]]:
    """(train, heldout): a text is held out when its hash score is below ``fraction`` (capped at ``max_heldout``)."""
    if not 0.0 <= fraction < 1.0:
        raise FinemedError(f"held-out fraction {fraction} must be in [0, 1)")
    train, held = [], []
    for text in texts:
        (held if heldout_score(text, seed) < fraction and (max_heldout is None or len(held) < max_heldout)
         else train).append(text)
    return train, held


def heldout_texts(spec: str, fraction: float, seed: int = 0, max_docs: int | None = None) -> list[str]:
    """The held-out texts of ``spec`` (hash score < ``fraction``), at most ``max_docs``, streaming."""
    picked: list[str] = []
    for text in iter_texts(spec):
        if heldout_score(text, seed) < fraction:
            picked.append(text)
            if max_docs is not None and len(picked) >= max_docs:
                break
    return picked


def train_texts(spec: str, fraction: float, seed: int = 0, max_docs: int | None = None) -> Iterator[str]:
    """The training texts of ``spec``: every text that :func:`heldout_texts` would not pick."""
    return (t for t in iter_texts(spec, max_docs) if heldout_score(t, seed) >= fraction)

"""Training text for tokenizers: text sources (the :mod:`finemed.core.texts` grammar) cut to a byte budget per language.

Sources are any :mod:`finemed.core.texts` spec: ``builtin:sib200.deu_Latn`` (``@dev``, ``@all``), ``builtin:xquad.de``,
``builtin:xquad.de#question``, ``builtin:fortunes_de``, a file or folder (a corpus stage's run dir: its parquet
output), ``PATH#field``, ``hf:DATASET``. Everything streams, so a big corpus costs only the budget read.

What is tokenizer-specific lives here: within a language, sources are read round-robin, one text each, so a
budget smaller than the total still mixes them. Each source is sampled across its whole stream, seeded, not read
from its head: a file or folder source strides over its shards (the shard order shuffled, then one text from each
in turn), an ``hf:`` source goes through ``datasets``' own ``IterableDataset.shuffle`` (shard order + buffer), and
every source then passes a seeded shuffle buffer (:func:`shuffle_buffer`, the same algorithm as ``datasets``'
buffer, which works on any iterator); the last text is cut so the budget holds; the texts become
training lines (one per paragraph), written once to a :class:`LinesFile` that every tokenizer of a corpus
streams from.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable, Iterator

from finemed.core.logs import Counter
from finemed.core.texts import _open_fs, iter_file, iter_texts, list_files

SHUFFLE_BUFFER = 10_000  # texts held to shuffle within (datasets' default buffer size)


def round_robin(iterators: Iterable[Iterator[str]]) -> Iterator[str]:
    active = list(iterators)
    while active:
        for it in list(active):
            item = next(it, None)
            if item is None:
                active.remove(it)
            else:
                yield item


def take_budget(texts: Iterable[str], max_bytes: int, *, description: str = "") -> tuple[list[str], int]:
    """Texts until ``max_bytes`` UTF-8 bytes; the last one is cut (at a character) so the budget holds.

    With a ``description``, a progress bar counts the bytes read.
    """
    out, used = [], 0
    with Counter(description, max_bytes, enabled=bool(description)) as bar:
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
                    bar.advance(len(rest.encode("utf-8")))
                break
            out.append(text)
            used += size
            bar.advance(size)
    return out, used


def shuffle_buffer(items: Iterable[str], size: int, rng: random.Random) -> Iterator[str]:
    """Yield ``items`` in a seeded random order using a buffer of ``size`` (``datasets``' shuffle-buffer rule)."""
    buf: list[str] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        i = rng.randrange(size)
        yield buf[i]
        buf[i] = item
    rng.shuffle(buf)
    yield from buf


def shard_stride(spec: str, rng: random.Random) -> Iterator[str]:
    """A file/folder source read across its shards: shuffled shard order, one text from each shard in turn."""
    url, _, field = spec.partition("#")
    fs, _ = _open_fs(url)
    files = list_files(url)
    rng.shuffle(files)
    yield from (t for t in round_robin(iter_file(fs, f, field or "text") for f in files) if t.strip())


def sampled_texts(spec: str, seed: int = 0, buffer: int = SHUFFLE_BUFFER) -> Iterator[str]:
    """The texts of one source in a seeded order that samples its whole stream (see the module docstring)."""
    rng = random.Random(f"{seed}:{spec}")
    if spec.startswith("builtin:"):
        stream = iter_texts(spec)
    elif spec.startswith("hf:"):
        stream = iter_texts(spec, seed=seed, shuffle_buffer=buffer)
    else:
        stream = shard_stride(spec, rng)
    return shuffle_buffer(stream, buffer, rng)


def language_texts(sources: list[str], max_bytes: int, *, description: str = "", seed: int = 0,
                   buffer: int = SHUFFLE_BUFFER) -> tuple[list[str], int]:
    """Round-robin over a language's sources, each sampled across its stream, up to the byte budget: (texts, bytes)."""
    return take_budget(round_robin(sampled_texts(s, seed, buffer) for s in sources), max_bytes,
                       description=description)


def training_lines(texts: Iterable[str]) -> Iterator[str]:
    """One line per paragraph (what SentencePiece trains on); blank lines dropped."""
    for text in texts:
        for line in text.split("\n"):
            if line.strip():
                yield line.strip()


class LinesFile:
    """Training lines on disk (one per line, UTF-8): re-iterable and sized, so trainers stream them.

    Every tokenizer of a corpus reads the same file, so they train on exactly the same lines while the
    texts are held in memory only once, per language, while they are gathered.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.n_lines = 0
        self.n_bytes = 0

    def extend(self, lines: Iterable[str]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            for line in lines:
                line = line.replace("\n", " ").strip()
                if line:
                    fh.write(line + "\n")
                    self.n_lines += 1
                    self.n_bytes += len(line.encode("utf-8"))

    def __len__(self) -> int:
        return self.n_lines

    def __iter__(self) -> Iterator[str]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                yield line.rstrip("\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

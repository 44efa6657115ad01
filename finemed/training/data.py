"""Training data for CPT (and KD): stream texts, tokenise, pack into fixed-length blocks, mix, hold out.

The pipeline is ``iter_texts`` → ``split_heldout`` → ``write_token_file`` → ``PackedBlocks`` → ``MixedBlocks``
→ ``PackCollator``:

- **Streaming.** Texts are read lazily (jsonl line by line, parquet by record batch, hub datasets with
  ``datasets`` streaming) and tokenised in batches straight into a flat ``uint16``/``uint32`` token file on
  disk, read back as a ``numpy.memmap``. A corpus larger than RAM therefore never has to fit in memory.
- **Packing.** Documents are concatenated with one EOS token after each, then cut into blocks of
  ``seq_len`` tokens (the remainder is dropped). Document boundaries are recovered from the EOS tokens, so
  the collator can emit reset ``position_ids`` and an optional block-diagonal causal attention mask
  (``doc_mask=True``: no token attends across a document boundary; transformers accepts the 4-D bool mask
  for SDPA/eager, flash-attention uses the position ids).
- **Mixing.** ``MixedBlocks`` adds replay (general-domain) blocks to the domain blocks so that they make up
  ``replay_ratio`` of all training blocks, and fixes one seeded permutation: the order is deterministic.
- **Held-out splits** are chosen by a seeded hash of each text, so a document lands in the same split on
  every run and in streaming mode, without reading the corpus twice.

Why hand-written: TRL's ``pack_dataset`` and ``datasets.map`` pack in-memory Arrow tables, without EOS-aware
document masks and without a memmap that a map-style dataset can index (which the HF Trainer needs for an
exact resume). The rest (tokenisation, streaming readers, the Trainer) is library code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from finemed.data.loaders import iter_jsonl_field
from finemed.config import FinemedError


# ----------------------------------------------------------------------------------------------- reading
def iter_texts(source: str, field: str = "text", max_docs: int | None = None) -> Iterator[str]:
    """Yield non-empty texts, lazily, from ``source``.

    ``source`` is ``builtin:NAME`` (the bundled sets of :func:`finemed.evaluation.perplexity.builtin_texts`),
    a ``.jsonl``/``.jsonl.gz``/``.txt``/``.parquet`` file or a directory of them, or ``hf:NAME[:CONFIG][@SPLIT]``
    (a hub dataset or local dataset dir, streamed with ``datasets``).
    """
    count = 0
    for text in _iter_source(source, field):
        if text and text.strip():
            yield text
            count += 1
            if max_docs is not None and count >= max_docs:
                return


def _iter_source(source: str, field: str) -> Iterator[str]:
    if source.startswith("builtin:"):
        from finemed.evaluation.perplexity import builtin_texts

        yield from builtin_texts(source.split(":", 1)[1])
        return
    if source.startswith("hf:"):
        yield from _iter_hf(source[3:], field)
        return
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
        if not files:
            raise FinemedError(f"{path}: no .jsonl/.jsonl.gz/.txt/.parquet files inside; point at a text corpus")
        for f in files:
            yield from _iter_file(f, field)
        return
    if not path.is_file():
        raise FinemedError(f"text source {source!r}: no such file or directory; pass a path, builtin:NAME "
                           f"(medical, fortunes, xquad_en, ...) or hf:DATASET")
    yield from _iter_file(path, field)


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, kind in ((".jsonl.gz", "jsonl"), (".jsonl", "jsonl"), (".json", "jsonl"), (".parquet", "parquet"),
                         (".txt", "txt"), (".md", "txt")):
        if name.endswith(suffix):
            return kind
    return None


def _iter_file(path: Path, field: str) -> Iterator[str]:
    kind = _kind(path)
    if kind == "jsonl":
        yield from iter_jsonl_field(path, field, "every row needs one (or set field:)")
    elif kind == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if field not in pf.schema_arrow.names:
            raise FinemedError(f"{path}: parquet has no column {field!r} (has {', '.join(pf.schema_arrow.names)})")
        for batch in pf.iter_batches(columns=[field], batch_size=1024):
            yield from (str(t) for t in batch.column(0).to_pylist() if t is not None)
    elif kind == "txt":
        with open(path, encoding="utf-8") as fh:
            block: list[str] = []
            for line in fh:
                if line.strip():
                    block.append(line.rstrip("\n"))
                elif block:
                    yield "\n".join(block)
                    block = []
            if block:
                yield "\n".join(block)
    else:
        raise FinemedError(f"{path}: unsupported text format; use .jsonl (with a {field!r} field), .txt or .parquet")


def _iter_hf(spec: str, field: str) -> Iterator[str]:
    from datasets import load_dataset

    name, _, split = spec.partition("@")
    name, _, cfg = name.partition(":")
    try:
        ds = load_dataset(name, cfg or None, split=split or "train", streaming=True)
    except Exception as err:  # datasets raises many types; the user needs one line
        raise FinemedError(f"hf:{spec}: cannot open dataset ({type(err).__name__}: {str(err)[:120]}); "
                           f"check the name, or download it first (offline mode is on)") from None
    for row in ds:
        if field not in row:
            raise FinemedError(f"hf:{spec}: rows have no {field!r} field (have {', '.join(row)})")
        yield str(row[field])


# ---------------------------------------------------------------------------------------------- held out
def heldout_score(text: str, seed: int = 0) -> float:
    """A stable pseudo-random number in [0, 1) for ``text``: the basis of every held-out split."""
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_heldout(texts: Iterable[str], fraction: float, seed: int = 0,
                  max_heldout: int | None = None) -> tuple[list[str], list[str]]:
    """Split texts into (train, heldout): a text is held out when its hash score is below ``fraction``.

    ``max_heldout`` caps the held-out list (extra ones go back to train), so evaluation stays cheap on a big
    corpus. For a streaming split of a big corpus use :func:`heldout_score` as a filter instead.
    """
    if not 0.0 <= fraction < 1.0:
        raise FinemedError(f"held-out fraction {fraction} must be in [0, 1)")
    train, held = [], []
    for text in texts:
        (held if heldout_score(text, seed) < fraction and (max_heldout is None or len(held) < max_heldout)
         else train).append(text)
    return train, held


def heldout_texts(source: str, fraction: float, seed: int = 0, max_docs: int | None = None,
                  field: str = "text") -> list[str]:
    """The held-out texts of ``source`` (hash score < ``fraction``), at most ``max_docs``, streaming."""
    picked: list[str] = []
    for text in iter_texts(source, field):
        if heldout_score(text, seed) < fraction:
            picked.append(text)
            if max_docs is not None and len(picked) >= max_docs:
                break
    return picked


def train_texts(source: str, fraction: float, seed: int = 0, max_docs: int | None = None,
                field: str = "text") -> Iterator[str]:
    """The training texts of ``source``: every text that :func:`heldout_texts` would not pick."""
    return (t for t in iter_texts(source, field, max_docs) if heldout_score(t, seed) >= fraction)


# ------------------------------------------------------------------------------------------ token files
@dataclass
class TokenFile:
    """A flat token file written by :func:`write_token_file`: ``tokens`` ids, ``docs`` documents, dtype name."""

    path: Path
    tokens: int
    docs: int
    dtype: str

    def array(self) -> np.ndarray:
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.tokens,)) if self.tokens else \
            np.zeros((0,), dtype=self.dtype)


def write_token_file(texts: Iterable[str], tokenizer, path: Path | str, *, eos_id: int | None = None,
                     batch_size: int = 512) -> TokenFile:
    """Tokenise ``texts`` in batches (no special tokens) and append ``ids + [eos]`` per document to ``path``.

    Written to a tmp sibling and renamed, so a crash never leaves a file that looks complete. A JSON sidecar
    ``<path>.json`` records the counts.
    """
    from finemed.artifacts import atomic_path, atomic_write_json

    eos_id = tokenizer.eos_token_id if eos_id is None else eos_id
    if eos_id is None:
        raise FinemedError("packing: the tokenizer has no EOS token; set eos_token in its tokenizer_config.json")
    vocab = len(tokenizer)
    dtype = np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.uint32
    path = Path(path)
    n_tokens = n_docs = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        batch: list[str] = []

        def flush() -> None:
            nonlocal n_tokens, n_docs
            for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
                arr = np.empty(len(ids) + 1, dtype=dtype)
                arr[:-1] = ids
                arr[-1] = eos_id
                fh.write(arr.tobytes())
                n_tokens += arr.size
                n_docs += 1
            batch.clear()

        for text in texts:
            batch.append(text)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    info = TokenFile(path=path, tokens=n_tokens, docs=n_docs, dtype=np.dtype(dtype).name)
    atomic_write_json(path.with_name(path.name + ".json"), {"tokens": n_tokens, "docs": n_docs, "dtype": info.dtype,
                                                            "eos_id": int(eos_id)})
    return info


# -------------------------------------------------------------------------------------------- datasets
class PackedBlocks(torch.utils.data.Dataset):
    """Map-style dataset of consecutive ``seq_len`` blocks of a token array (the remainder is dropped)."""

    def __init__(self, tokens: np.ndarray, seq_len: int):
        if seq_len < 2:
            raise FinemedError(f"seq_len {seq_len} is too short; use at least 2 tokens per block")
        self.tokens, self.seq_len = tokens, seq_len
        self.n_blocks = len(tokens) // seq_len

    def __len__(self) -> int:
        return self.n_blocks

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_blocks:
            raise IndexError(i)
        return np.asarray(self.tokens[i * self.seq_len:(i + 1) * self.seq_len], dtype=np.int64)


class MixedBlocks(torch.utils.data.Dataset):
    """Domain blocks plus replay blocks making up ``replay_ratio`` of the total, in one seeded order.

    With ``n`` domain blocks the replay count is ``round(n * r / (1 - r))``, taken from the start of the replay
    blocks (capped at what exists; ``replay_share`` reports the share actually reached).
    """

    def __init__(self, domain: PackedBlocks, replay: PackedBlocks | None = None, replay_ratio: float = 0.0,
                 seed: int = 0, shuffle: bool = True):
        if not 0.0 <= replay_ratio < 1.0:
            raise FinemedError(f"replay_ratio {replay_ratio} must be in [0, 1)")
        if replay_ratio > 0 and (replay is None or len(replay) == 0):
            raise FinemedError("replay_ratio > 0 but the replay data gave no full block; add general text or set 0")
        self.domain, self.replay = domain, replay
        want = round(len(domain) * replay_ratio / (1.0 - replay_ratio)) if replay_ratio > 0 else 0
        self.n_replay = min(want, len(replay)) if replay is not None else 0
        n = len(domain) + self.n_replay
        self.order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)

    @property
    def replay_share(self) -> float:
        return self.n_replay / max(len(self), 1)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> np.ndarray:
        j = int(self.order[i])
        return self.domain[j] if j < len(self.domain) else self.replay[j - len(self.domain)]


# ----------------------------------------------------------------------------------------------- collate
def segment_ids(input_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Document index of every position: a new document starts after each EOS (the EOS ends its doc)."""
    is_eos = (input_ids == eos_id).long()
    starts = torch.zeros_like(is_eos)
    starts[:, 1:] = is_eos[:, :-1]
    return starts.cumsum(dim=1)


def doc_position_ids(seg: torch.Tensor) -> torch.Tensor:
    """Positions that restart at 0 at each document start."""
    idx = torch.arange(seg.size(1), device=seg.device).expand_as(seg)
    new_doc = torch.ones_like(seg, dtype=torch.bool)
    new_doc[:, 1:] = seg[:, 1:] != seg[:, :-1]
    start = torch.where(new_doc, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - start


def doc_attention_mask(seg: torch.Tensor) -> torch.Tensor:
    """Block-diagonal causal mask ``[B, 1, L, L]`` (True = may attend) from segment ids."""
    length = seg.size(1)
    causal = torch.ones(length, length, dtype=torch.bool, device=seg.device).tril()
    return ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]


class PackCollator:
    """Stack blocks into ``input_ids``/``labels``; with ``doc_mask`` add the document mask and position ids."""

    def __init__(self, eos_id: int, doc_mask: bool = False):
        self.eos_id, self.doc_mask = eos_id, doc_mask

    def __call__(self, blocks: list[np.ndarray]) -> dict[str, torch.Tensor]:
        input_ids = torch.from_numpy(np.stack(blocks)).long()
        batch = {"input_ids": input_ids, "labels": input_ids.clone()}
        if self.doc_mask:
            seg = segment_ids(input_ids, self.eos_id)
            batch["attention_mask"] = doc_attention_mask(seg)
            batch["position_ids"] = doc_position_ids(seg)
        return batch


def pack_texts(texts: Iterable[str], tokenizer, seq_len: int, workdir: Path | str, name: str = "tokens") -> PackedBlocks:
    """Convenience: tokenise ``texts`` into ``workdir/name.bin`` and return its packed blocks."""
    info = write_token_file(texts, tokenizer, Path(workdir) / f"{name}.bin")
    return PackedBlocks(info.array(), seq_len)

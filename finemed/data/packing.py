"""Packed training data for CPT and KD: tokenise into a flat token file, cut into blocks, mix, collate.

The pipeline is ``finemed.core.texts.train_texts`` → :func:`write_token_file` → :class:`PackedBlocks` →
:class:`MixedBlocks` → :class:`PackCollator`:

- **Streaming.** Texts are tokenised in batches straight into a flat ``uint16``/``uint32`` token file on
  disk, read back as a ``numpy.memmap``. A corpus larger than RAM therefore never has to fit in memory.
- **Packing.** Documents are concatenated with one EOS token after each, then cut into blocks of
  ``seq_len`` tokens (the remainder is dropped). Document boundaries are recovered from the EOS tokens.
  ``doc_mask=True``: the collator emits ``position_ids`` that restart at 0 in each document and a block-diagonal
  causal 4-D mask in the form the model's attention takes (bool for SDPA/flex; additive 0/-inf for eager, which
  adds a 4-D mask to its scores as is, so a bool mask would mask nothing); for flash-attention the position ids
  alone, from which
  transformers runs varlen attention over the same boundaries (``modeling_flash_attention_utils.
  _is_packed_sequence``; flash-attention takes no 4-D mask). Either way no token attends across a document.
  (SDPA's own detection from position ids, ``masking_utils.find_packed_sequence_indices``, is skipped whenever a
  KV cache exists, which it does in training with ``use_cache`` on: hence the explicit mask there.)
  ``doc_mask=False`` (the default, classic packing): neither is emitted, positions run 0..seq_len-1 over the
  block and a token attends to the documents before it in the block, identically under every implementation.
- **Mixing.** ``MixedBlocks`` adds replay (general-domain) blocks to the domain blocks so that they make up
  ``replay_ratio`` of all training blocks, and fixes one seeded permutation: the order is deterministic.

Why hand-written: TRL's ``pack_dataset`` and ``datasets.map`` pack in-memory Arrow tables, without EOS-aware
document masks and without a memmap that a map-style dataset can index (which the HF Trainer needs for an
exact resume). Text reading and held-out splits live in :mod:`finemed.core.texts`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from finemed.core.artifacts import atomic_path, atomic_write_json, fingerprint, now_iso, read_json
from finemed.core.config import FinemedError
from finemed.core.logs import Counter, get_logger

log = get_logger(__name__)
TOKENIZE_LOG = "tokenize.log"  # one line per tokenisation actually run in a data dir

if TYPE_CHECKING:
    import torch


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
                     batch_size: int = 512, progress: bool = True) -> TokenFile:
    """Tokenise ``texts`` in batches (no special tokens) and append ``ids + [eos]`` per document to ``path``.

    Written to a tmp sibling and renamed, so a crash never leaves a file that looks complete. A JSON sidecar
    ``<path>.json`` records the counts. ``progress`` shows a bar of documents tokenised.
    """
    eos_id = tokenizer.eos_token_id if eos_id is None else eos_id
    if eos_id is None:
        raise FinemedError("packing: the tokenizer has no EOS token; set eos_token in its tokenizer_config.json")
    vocab = len(tokenizer)
    dtype = np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.uint32
    path = Path(path)
    n_tokens = n_docs = 0
    total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh, \
            Counter(f"tokenise {path.name}", total, enabled=progress) as bar:
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
            bar.advance(len(batch))
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


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's full definition (fast tokenizers: its JSON) and EOS id."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{body}|{tokenizer.eos_token_id}".encode()).hexdigest()[:16]


def data_fingerprint(key: dict[str, Any]) -> str:
    """A hash of what selects the text (``key``), with the content fingerprint of a local source path."""
    src = str(key.get("source", ""))
    local = Path(src.split("#", 1)[0]).expanduser()
    files = fingerprint(local) if src and not src.startswith(("builtin:", "hf:")) and local.exists() else ""
    return hashlib.sha256(json.dumps({**key, "files": files}, sort_keys=True, default=str).encode()).hexdigest()[:16]


def token_stream(texts: Callable[[], Iterable[str]], tokenizer, workdir: Path | str, name: str,
                 key: dict[str, Any], *, wait_s: float = 3600.0) -> TokenFile:
    """The token file of ``texts()`` in ``workdir``, tokenised once per tokenizer and data fingerprint.

    A file already there with the same fingerprints is reused (every rank, every resume). In a launched job
    whose data was not prepared by the launcher, rank 0 tokenises and the other ranks wait for its sidecar.
    Each tokenisation appends a line to ``workdir/tokenize.log``.
    """
    workdir = Path(workdir)
    tag = f"{tokenizer_fingerprint(tokenizer)}-{data_fingerprint(key)}"
    path = workdir / f"{name}-{tag}.bin"
    side = path.with_name(path.name + ".json")
    if int(os.environ.get("RANK", "0")) != 0:
        deadline = time.monotonic() + wait_s
        while not (side.is_file() and path.is_file()):
            if time.monotonic() > deadline:
                raise FinemedError(f"{path}: rank 0 did not finish tokenising within {wait_s:.0f} s")
            time.sleep(0.5)
    if side.is_file() and path.is_file():
        meta = read_json(side)
        log.info("token stream %s: reusing %s (%d tokens, %d docs)", name, path.name, meta["tokens"], meta["docs"])
        return TokenFile(path=path, tokens=meta["tokens"], docs=meta["docs"], dtype=meta["dtype"])
    info = write_token_file(texts(), tokenizer, path)
    with open(workdir / TOKENIZE_LOG, "a", encoding="utf-8") as fh:
        fh.write(f"{now_iso()} pid={os.getpid()} {path.name} tokens={info.tokens} docs={info.docs}\n")
    log.info("token stream %s: tokenised %d docs into %d tokens (%s)", name, info.docs, info.tokens, info.dtype)
    return info


# -------------------------------------------------------------------------------------------- datasets
class PackedBlocks:
    """Map-style dataset (``len``, ``[i]``: what torch's DataLoader and the HF Trainer take) of consecutive
    ``seq_len`` blocks of a token array (the remainder is dropped)."""

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


class MixedBlocks:
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
    import torch

    is_eos = (input_ids == eos_id).long()
    starts = torch.zeros_like(is_eos)
    starts[:, 1:] = is_eos[:, :-1]
    return starts.cumsum(dim=1)


def doc_position_ids(seg: torch.Tensor) -> torch.Tensor:
    """Positions that restart at 0 at each document start."""
    import torch

    idx = torch.arange(seg.size(1), device=seg.device).expand_as(seg)
    new_doc = torch.ones_like(seg, dtype=torch.bool)
    new_doc[:, 1:] = seg[:, 1:] != seg[:, :-1]
    start = torch.where(new_doc, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - start


def doc_attention_mask(seg: torch.Tensor) -> torch.Tensor:
    """Block-diagonal causal mask ``[B, 1, L, L]`` (True = may attend) from segment ids."""
    import torch

    length = seg.size(1)
    causal = torch.ones(length, length, dtype=torch.bool, device=seg.device).tril()
    return ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]


class PackCollator:
    """Stack blocks into ``input_ids``/``labels``; with ``doc_mask`` add per-document ``position_ids`` and the
    block-diagonal causal mask in the form ``attn`` (the model's ``attn_implementation``) takes: none for
    flash-attention (it masks by the position ids), additive for eager, bool otherwise."""

    def __init__(self, eos_id: int, doc_mask: bool = False, attn: str | None = "sdpa"):
        self.eos_id, self.doc_mask, self.attn = eos_id, doc_mask, attn or "sdpa"

    def __call__(self, blocks: list[np.ndarray]) -> dict[str, torch.Tensor]:
        import torch

        input_ids = torch.from_numpy(np.stack(blocks)).long()
        batch = {"input_ids": input_ids, "labels": input_ids.clone()}
        if self.doc_mask:
            seg = segment_ids(input_ids, self.eos_id)
            if not self.attn.startswith("flash"):
                mask = doc_attention_mask(seg)
                if self.attn == "eager":
                    mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
                batch["attention_mask"] = mask
            batch["position_ids"] = doc_position_ids(seg)
        return batch


def pack_texts(texts: Iterable[str], tokenizer, seq_len: int, workdir: Path | str,
               name: str = "tokens") -> PackedBlocks:
    """Convenience: tokenise ``texts`` into ``workdir/name.bin`` and return its packed blocks."""
    info = write_token_file(texts, tokenizer, Path(workdir) / f"{name}.bin")
    return PackedBlocks(info.array(), seq_len)

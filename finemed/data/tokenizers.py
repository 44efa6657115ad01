"""Load any tokenizer behind one small interface: ``load_any_tokenizer(path_or_name)``.

Handles HF tokenizer dirs / ``tokenizer.json`` / ``vocab.json`` + ``merges.txt``, SentencePiece ``.model``,
tiktoken ``.tiktoken`` rank files, the pretrained bundle by name (``gpt2``, ``qwen2.5``, ``llama-2``,
``cl100k_base``, …, see ``BUNDLED``) and ``smollm2`` (the cached model dir). Every backend encodes
*without* special tokens (no BOS/EOS), which is what fertility and parity count.

Loading follows ``shared/data/tokenizers/SOURCES.md``, which is verified against the llama.cpp test vectors:

- ``tokenizer.json`` loads with the ``tokenizers`` library as is (``PreTrainedTokenizerFast`` would wrap the same
  object); never through ``AutoTokenizer``, which under transformers 5 can swap in a model-specific class and
  change a custom tokenizer's ids (DESIGN.md trap).
- A ``vocab.json`` + ``merges.txt`` dir goes through ``AutoTokenizer`` (its ``tokenizer_config.json`` names the
  class whose converter builds the right pre-tokenizer, e.g. Qwen2's regex + NFC); we then keep only its
  ``backend_tokenizer``.
- SentencePiece ``.model`` files load with ``sentencepiece`` itself, not ``LlamaTokenizerFast``, which under
  transformers 5.24 differs from SentencePiece on double spaces. Counts include the leading ``▁`` piece.
- ``.tiktoken`` files: tiktoken's own constructor for the known encodings (pattern and specials from
  ``tiktoken_ext.openai_public``), fed from the local file after a sha256 check; other files get the
  cl100k pattern.

Besides ids, each backend gives character offsets per token (``encode_batch_offsets``), which the
tokenizer lab uses to count continued words in context.
"""

from __future__ import annotations

import base64
import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

from finemed.core.config import FinemedError
from finemed.data.registry import bundled_path
from finemed.models.smollm2 import ensure_model

# name → path relative to the bundled tokenizers dir
BUNDLED: dict[str, str] = {
    "gpt2": "gpt2",
    "gpt-neox-20b": "gpt-neox-20b",
    "qwen2.5": "qwen2.5",
    "llama-2": "llama-2/tokenizer.model",
    "mistral-7b-v0.1": "mistral-7b-v0.1/tokenizer.model",
    "mistral-7b-v0.3": "mistral-7b-v0.3/tokenizer.model",
    "falcon-7b": "falcon-7b/tokenizer.json",
    "cl100k_base": "tiktoken/cl100k_base.tiktoken",
    "o200k_base": "tiktoken/o200k_base.tiktoken",
    "p50k_base": "tiktoken/p50k_base.tiktoken",
    "r50k_base": "tiktoken/r50k_base.tiktoken",
}
MODEL_NAMES = ("smollm2",)  # registered models whose tokenizer we load from the model cache

Offsets = list[tuple[int, int]]
# tiktoken's cl100k_base split pattern (tiktoken_ext/openai_public.py), used for .tiktoken files of unknown encodings
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
                  r"""\s*[\r\n]|\s+(?!\S)|\s""")


class AnyTokenizer(ABC):
    """A tokenizer with one interface: ids without special tokens, batched, plus char offsets."""

    name: str
    kind: str  # "hf" | "sentencepiece" | "tiktoken"
    source: str  # the file or dir it came from

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    @abstractmethod
    def encode_batch_offsets(self, texts: Sequence[str]) -> list[tuple[list[int], Offsets]]:
        """Ids and ``(start, end)`` character offsets into each text, one pair per token."""

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Token counts only (what fertility and parity need); backends may skip building id lists."""
        return [len(ids) for ids in self.encode_batch(texts)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, source={self.source!r})"


class HFTokenizer(AnyTokenizer):
    """A ``tokenizers.Tokenizer`` (from tokenizer.json, or built from vocab.json + merges.txt)."""

    kind = "hf"

    def __init__(self, backend, name: str, source: str):
        self.backend, self.name, self.source = backend, name, source

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        # (encode_batch_fast, without offsets, measured no faster here with tokenizers 0.23)
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(e) for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def encode_batch_offsets(self, texts: Sequence[str]) -> list[tuple[list[int], Offsets]]:
        return [(e.ids, e.offsets) for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]


class SentencePieceTokenizer(AnyTokenizer):
    kind = "sentencepiece"

    def __init__(self, processor, name: str, source: str):
        self.sp, self.name, self.source = processor, name, source

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(texts))

    def encode_batch_offsets(self, texts: Sequence[str]) -> list[tuple[list[int], Offsets]]:
        out = []
        for text, proto in zip(texts, self.sp.encode(list(texts), return_type="proto")):
            char_at = _byte_to_char(text)  # SentencePiece offsets are UTF-8 byte offsets
            pieces = proto.pieces
            out.append(([p.id for p in pieces], [(char_at[p.begin], char_at[p.end]) for p in pieces]))
        return out


class TiktokenTokenizer(AnyTokenizer):
    kind = "tiktoken"

    def __init__(self, encoding, name: str, source: str):
        self.enc, self.name, self.source = encoding, name, source

    @property
    def vocab_size(self) -> int:
        return self.enc.n_vocab

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(list(texts), num_threads=4)

    def encode_batch_offsets(self, texts: Sequence[str]) -> list[tuple[list[int], Offsets]]:
        out = []
        for text, ids in zip(texts, self.encode_batch(texts)):
            _, starts = self.enc.decode_with_offsets(ids)
            ends = starts[1:] + [len(text)]
            out.append((ids, [(s, max(s, e)) for s, e in zip(starts, ends)]))
        return out


def _byte_to_char(text: str) -> list[int]:
    """Map each UTF-8 byte offset (0..len(bytes)) to the char offset it falls in."""
    if text.isascii():
        return list(range(len(text) + 1))
    table = []
    for i, ch in enumerate(text):
        table.extend([i] * len(ch.encode("utf-8")))
    table.append(len(text))
    return table


# ---------------------------------------------------------------- loading


def bundled_tokenizer_names() -> list[str]:
    return list(BUNDLED) + list(MODEL_NAMES)


def _load_hf_json(path: Path, name: str) -> HFTokenizer:
    from tokenizers import Tokenizer

    try:
        return HFTokenizer(Tokenizer.from_file(str(path)), name, str(path))
    except Exception as err:  # noqa: BLE001 - the library raises plain Exceptions for bad JSON
        raise FinemedError(f"{path}: not a valid HF tokenizer.json ({str(err).splitlines()[0][:160]}); "
                           f"pass a file written by tokenizers' Tokenizer.save") from None


def _load_vocab_merges(path: Path, name: str) -> HFTokenizer:
    import os

    from transformers import AutoTokenizer

    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # noqa: BLE001
        raise FinemedError(f"{path}: could not build a tokenizer from vocab.json + merges.txt "
                           f"({type(err).__name__}: {str(err).splitlines()[0][:160]}); add a tokenizer_config.json "
                           f"naming its tokenizer_class") from None
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise FinemedError(f"{path}: transformers gave a slow tokenizer ({type(tok).__name__}); "
                           f"convert it to tokenizer.json")
    return HFTokenizer(backend, name, str(path))


def _load_sentencepiece(path: Path, name: str) -> SentencePieceTokenizer:
    import sentencepiece as spm

    try:
        return SentencePieceTokenizer(spm.SentencePieceProcessor(model_file=str(path)), name, str(path))
    except (RuntimeError, OSError) as err:
        raise FinemedError(f"{path}: not a SentencePiece model ({str(err).splitlines()[0][:160]}); "
                           f"pass a .model file written by spm_train") from None


def _parse_tiktoken(data: bytes, path: Path) -> dict[bytes, int]:
    ranks = {}
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError:
            raise FinemedError(f"{path}:{lineno}: not a tiktoken rank line (expected 'base64token rank')") from None
    if not ranks:
        raise FinemedError(f"{path}: empty tiktoken file; expected 'base64token rank' lines")
    return ranks


def _load_tiktoken(path: Path, name: str) -> TiktokenTokenizer:
    import tiktoken
    import tiktoken_ext.openai_public as openai_public

    data = path.read_bytes()
    ctor = getattr(openai_public, path.stem, None) if path.stem in ("r50k_base", "p50k_base", "cl100k_base",
                                                                     "o200k_base") else None
    if ctor is not None:
        # Reuse tiktoken's own spec (pattern, specials) but read the ranks from the local file, checking the
        # sha256 tiktoken expects for that encoding.
        def local_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
            got = hashlib.sha256(data).hexdigest()
            if expected_hash and got != expected_hash:
                raise FinemedError(f"{path}: sha256 {got[:12]}… is not tiktoken's {path.stem} ({expected_hash[:12]}…); "
                                   f"the file is corrupt or another encoding: rename it")
            return _parse_tiktoken(data, path)

        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = local_ranks
        try:
            spec = ctor()
        finally:
            openai_public.load_tiktoken_bpe = original
    else:
        spec = {"name": path.stem, "pat_str": CL100K_PATTERN, "mergeable_ranks": _parse_tiktoken(data, path),
                "special_tokens": {}}
    return TiktokenTokenizer(tiktoken.Encoding(**spec), name, str(path))


def _load_path(path: Path, name: str) -> AnyTokenizer:
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return _load_hf_json(path / "tokenizer.json", name)
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            return _load_vocab_merges(path, name)
        models = sorted(path.glob("*.model"))
        if models:
            return _load_sentencepiece(models[0], name)
        ticks = sorted(path.glob("*.tiktoken"))
        if len(ticks) == 1:
            return _load_tiktoken(ticks[0], name)
        raise FinemedError(f"{path}: no tokenizer found (looked for tokenizer.json, vocab.json + merges.txt, "
                           f"*.model, one *.tiktoken); pass the tokenizer file itself")
    if path.suffix == ".json":
        return _load_hf_json(path, name)
    if path.suffix == ".model":
        return _load_sentencepiece(path, name)
    if path.suffix == ".tiktoken":
        return _load_tiktoken(path, name)
    raise FinemedError(f"{path}: unknown tokenizer format {path.suffix!r}; expected an HF dir, tokenizer.json, "
                       f"a SentencePiece .model or a .tiktoken file")


def load_any_tokenizer(path_or_name: str | Path, *, name: str | None = None) -> AnyTokenizer:
    """Load a tokenizer by bundled name (``gpt2``, ``cl100k_base``, ``smollm2``, …) or from a path."""
    spec = str(path_or_name)
    if spec in BUNDLED:
        return _load_path(bundled_path("tokenizers") / BUNDLED[spec], name or spec)
    if spec in MODEL_NAMES:

        return _load_path(ensure_model(spec), name or spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FinemedError(f"tokenizer {spec!r}: no such file or directory, and not a known name "
                           f"({', '.join(bundled_tokenizer_names())}); pass a path or one of those names")
    default = path.parent.name if path.is_file() and path.stem in ("tokenizer", "spm") else path.stem
    return _load_path(path, name or (path.name if path.is_dir() else default))

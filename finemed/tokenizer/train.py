"""Train one tokenizer (BPE or Unigram, with HF ``tokenizers`` or SentencePiece) and save it HF-loadable.

Both libraries do the training; this file only sets them up comparably and writes a folder that
``PreTrainedTokenizerFast.from_pretrained`` loads: ``tokenizer.json`` + ``tokenizer_config.json``
(+ ``special_tokens_map.json``). SentencePiece tokenizers also keep ``tokenizer.model``; their
``tokenizer.json`` is built with transformers' own SentencePiece converter
(``SpmConverter.build_tokenizer_from_spm_proto``), which follows the model's normaliser settings.

Set-ups (the vocab size asked for *includes* the specials ``<unk> <s> </s>``):

- ``bpe`` + ``hf``: byte-level BPE as in GPT-2 (ByteLevel pre-tokenizer, 256-byte initial alphabet);
- ``unigram`` + ``hf``: NFKC + Metaspace (``▁``) Unigram, like SentencePiece's, ``<unk>`` for unseen chars;
- ``bpe``/``unigram`` + ``sp``: SentencePiece defaults (nmt_nfkc, dummy prefix) with byte fallback
  (its 256 byte pieces count towards the vocab size).

A vocab larger than the corpus allows is an error, not a silently smaller tokenizer. Both trainers stream the
lines from an iterator (``train_from_iterator``, SentencePiece's ``sentence_iterator``); HF shows its own progress
bar, SentencePiece logs (its own log at ``FINEMED_LOG_LEVEL=DEBUG``).
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Iterable, Literal, Sized

from pydantic import BaseModel

from finemed.core.artifacts import atomic_path
from finemed.core.config import FinemedError
from finemed.core.logs import get_logger, progress_enabled

log = get_logger(__name__)

Algorithm = Literal["bpe", "unigram"]
Library = Literal["hf", "sp"]
SPECIALS = ["<unk>", "<s>", "</s>"]
ALG_TAG = {"bpe": "BPE", "unigram": "UNI"}


class TrainedTokenizer(BaseModel):
    name: str
    algorithm: Algorithm
    library: Library
    vocab_size_asked: int
    vocab_size: int
    corpus: str
    train_bytes: int
    path: str
    seconds: float = 0.0


def tokenizer_name(algorithm: str, library: str, vocab_size: int, corpus: str = "", size: str | None = None) -> str:
    """The paper's naming, ``BPE-SP-33`` (vocab in thousands), prefixed by the corpus: ``EN-BPE-SP-2``; ``size``
    replaces the vocab part (a sweep's ``size_names``, so a rehearsal at tiny sizes keeps the names)."""
    k = vocab_size / 1000
    size = size or (f"{k:g}" if k < 10 else str(round(k)))
    base = f"{ALG_TAG[algorithm]}-{library.upper()}-{size}"
    return f"{corpus}-{base}" if corpus else base


class VocabTooLargeError(FinemedError):
    """The corpus cannot support the vocab size asked for."""


def _too_large(vocab_size: int, got: int, what: str) -> FinemedError:
    return VocabTooLargeError(f"vocab size {vocab_size} is larger than possible for {what}: training reached only "
                              f"{got} tokens; lower vocab_sizes or add training text")


def train_hf(lines: Iterable[str], algorithm: Algorithm, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if algorithm == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if vocab_size < len(alphabet) + len(SPECIALS) + 1:
            raise FinemedError(f"vocab size {vocab_size} is too small for byte-level BPE: it needs at least "
                               f"{len(alphabet) + len(SPECIALS) + 1} (256 bytes + specials + 1 merge)")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=alphabet,
                                      show_progress=progress_enabled())
    else:
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>",
                                          show_progress=progress_enabled())
    tok.train_from_iterator(iter(lines), trainer=trainer,
                            length=len(lines) if isinstance(lines, Sized) else None)
    got = tok.get_vocab_size(with_added_tokens=True)
    if got < vocab_size:
        raise _too_large(vocab_size, got, f"HF {algorithm} on this corpus")
    return tok


def train_sp(lines: Iterable[str], algorithm: Algorithm, vocab_size: int, *, character_coverage: float = 0.9995,
             threads: int = 2, seed_sentences: int = 1_000_000) -> bytes:
    """Train SentencePiece in memory and return the serialized ``.model``."""
    import sentencepiece as spm

    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size, model_type=algorithm,
            character_coverage=character_coverage, byte_fallback=True, num_threads=threads,
            max_sentence_length=1 << 16, input_sentence_size=seed_sentences, shuffle_input_sentence=True,
            unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>", pad_id=-1,
            minloglevel=0 if log.isEnabledFor(logging.DEBUG) else 2,
        )
    except RuntimeError as err:
        msg = str(err).strip().splitlines()[-1]
        if "Vocabulary size" in msg or "vocab_size" in msg:
            raise VocabTooLargeError(f"vocab size {vocab_size} is larger than possible for SentencePiece {algorithm} "
                                     f"on this corpus ({msg.split(') ', 1)[-1]}); lower vocab_sizes or add training "
                                     f"text") from None
        raise FinemedError(f"SentencePiece {algorithm} training failed: {msg}") from None
    return buf.getvalue()


def sp_to_hf(model_bytes: bytes):
    """SentencePiece model → ``tokenizers.Tokenizer`` with the same encoding (transformers' converter)."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import SpmConverter

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_bytes)
    pieces = [(p.piece, p.score) for p in proto.pieces]
    if proto.trainer_spec.model_type == 1:  # unigram
        vocab = pieces
    else:
        vocab = {piece: i for i, (piece, _) in enumerate(pieces)}
    tok = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=False)
    controls = [p.piece for p in proto.pieces if p.type in (2, 3)]  # unknown, control
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False) for c in controls])
    return tok


def save_hf_dir(tok, out_dir: Path, *, model_bytes: bytes | None = None, meta: dict | None = None) -> Path:
    """Write an HF-loadable tokenizer folder atomically (and the SentencePiece .model if given)."""
    from transformers import PreTrainedTokenizerFast

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
        fast.save_pretrained(str(tmp))
        if model_bytes is not None:
            (tmp / "tokenizer.model").write_bytes(model_bytes)
        if meta is not None:
            (tmp / "finemed_tokenizer.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out_dir


def train_one(lines: Iterable[str], *, algorithm: Algorithm, library: Library, vocab_size: int, out_dir: Path,
              corpus: str = "", train_bytes: int = 0, character_coverage: float = 0.9995,
              threads: int = 2, name: str | None = None) -> TrainedTokenizer:
    """Train one tokenizer on ``lines`` and save it under ``out_dir`` (HF-loadable).

    ``lines`` is streamed to the trainer; a sized re-iterable (a :class:`~finemed.tokenizer.sources.LinesFile`)
    is read as is, anything else is first collected without its blank lines.
    """
    if not isinstance(lines, Sized) or isinstance(lines, (list, tuple)):
        lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise FinemedError(f"empty corpus{' ' + corpus if corpus else ''}: no training text; check its sources")
    if algorithm not in ALG_TAG or library not in ("hf", "sp"):
        raise FinemedError(f"unknown tokenizer {algorithm}/{library}; algorithm is bpe|unigram, library hf|sp")
    start = time.perf_counter()
    model_bytes = None
    log.debug("training %s %s, vocab %d, on %s lines", library.upper(), algorithm, vocab_size, f"{len(lines):,}")
    if library == "hf":
        tok = train_hf(lines, algorithm, vocab_size)
    else:
        model_bytes = train_sp(lines, algorithm, vocab_size, character_coverage=character_coverage, threads=threads)
        tok = sp_to_hf(model_bytes)
    info = TrainedTokenizer(
        name=name or tokenizer_name(algorithm, library, vocab_size, corpus), algorithm=algorithm, library=library,
        vocab_size_asked=vocab_size, vocab_size=tok.get_vocab_size(with_added_tokens=True), corpus=corpus,
        train_bytes=train_bytes or sum(len(ln.encode("utf-8")) for ln in lines), path=str(out_dir),
        seconds=round(time.perf_counter() - start, 2),
    )
    save_hf_dir(tok, out_dir, model_bytes=model_bytes, meta=info.model_dump())
    return info

"""Stage ``eval.bpb``: bits per byte (bpb) and per-token loss of any causal LM on a text set: the project's yardstick.

bpb = Σ token NLL (nats) / (ln 2 × UTF-8 bytes of the texts). It is tokenizer-independent, so models with
different vocabularies (and a model before/after CPT, merging or KD) compare fairly. lm-eval computes the
same quantity only inside its own task harness (``loglikelihood_rolling``) and without a per-set API, so the
windowing is written here: each document is prefixed with one BOS/EOS token (so its first token is scored
too), split into windows of ``max_length`` tokens that advance by ``stride``; each token is scored once,
with up to ``max_length - stride`` tokens of left context (the HF perplexity recipe). Windows of all
documents are sorted by length and batched.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from pydantic import BaseModel, Field, field_validator

from finemed.artifacts import atomic_write_json
from finemed.models.bpb import BpbResult, compute_bpb, subsample  # noqa: F401  (moved; re-exported for now)
from finemed.config import FinemedError, StageConfig

def bf16_supported() -> bool:
    """True where the CPU has native bf16 (avx512_bf16 / AMX): autocast is then ~3x faster than fp32."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported()) or bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def autocast_context(device: str, enabled: bool):
    if enabled and device == "cpu" and bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if enabled and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


BUILTIN_SETS = ("medical", "fortunes", "xquad_en", "xquad_de", "grascco", "germedbench")


def builtin_texts(name: str) -> list[str]:
    """The bundled text sets: ``medical`` (GraSCCo + GerMedBench), ``fortunes`` (general German),
    ``xquad_en`` / ``xquad_de`` (Wikipedia contexts), ``grascco``, ``germedbench``."""
    from finemed.data import loaders

    if name == "medical":
        return [d.text for d in loaders.medical_documents()]
    if name == "grascco":
        return [d.text for d in loaders.load_grascco()]
    if name == "germedbench":
        return [d.text for d in loaders.medical_documents() if d.source.startswith("germedbench")]
    if name == "fortunes":
        return [d.text for d in loaders.load_fortunes()]
    if name in ("xquad_en", "xquad_de"):
        seen: dict[str, None] = {}
        for ex in loaders.load_squad(name="xquad." + name.split("_")[1]):
            seen.setdefault(ex.context, None)
        return list(seen)
    raise FinemedError(f"unknown built-in text set {name!r}; expected one of {', '.join(BUILTIN_SETS)} or a file path")


def load_texts(spec: str, field: str = "text") -> list[str]:
    """``builtin:NAME`` or a jsonl/txt/parquet path."""
    from finemed.data.loaders import text_file_docs

    if spec.startswith("builtin:"):
        return builtin_texts(spec.split(":", 1)[1])
    return text_file_docs(spec, field=field)


class BpbSetsConfig(StageConfig):
    """Stage ``eval.bpb``: one model, several named text sets."""

    model: str = "smollm2"
    sets: dict[str, str] = Field(default_factory=lambda: {"medical": "builtin:medical", "german": "builtin:fortunes",
                                                          "english": "builtin:xquad_en"})
    max_docs: int | None = Field(default=None, ge=1)
    max_chars: int | None = Field(default=60000, ge=1)
    max_length: int = Field(default=1024, ge=2)
    stride: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=4, ge=1)
    autocast: bool = True
    seed: int = 0

    @field_validator("sets")
    @classmethod
    def _nonempty(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("give at least one text set, e.g. {medical: builtin:medical}")
        return v


def run(config: BpbSetsConfig, run_dir: Path) -> dict:
    """Stage entry: bpb of ``config.model`` on each set; writes ``bpb.json`` and ``metrics.json``."""
    from finemed.models.loading import load_causal_lm

    texts = {name: subsample(load_texts(spec), config.max_docs, config.max_chars, config.seed)
             for name, spec in config.sets.items()}
    model, tok = load_causal_lm(config.model)
    results = {name: compute_bpb(model, tok, t, max_length=config.max_length, stride=config.stride,
                                 batch_size=config.batch_size, autocast=config.autocast)
               for name, t in texts.items()}
    out = {"model": config.model, "sets": {k: v.model_dump() for k, v in results.items()},
           "bpb": {k: round(v.bpb, 4) for k, v in results.items()}}
    atomic_write_json(Path(run_dir) / "bpb.json", out)
    atomic_write_json(Path(run_dir) / "metrics.json", out)
    return out

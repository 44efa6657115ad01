"""Load and save HF causal LMs safely.

- ``trust_remote_code`` stays off unless asked for.
- Only safetensors weights load unless ``allow_pickle=True``: a dir with only ``pytorch_model.bin`` / ``*.pt``
  is refused with one line, because unpickling runs arbitrary code.
- Tokenizers load with ``PreTrainedTokenizerFast`` where a ``tokenizer.json`` exists (DESIGN.md trap: AutoTokenizer
  on a Qwen2-config dir swaps in Qwen2Tokenizer and changes a custom tokenizer's ids).
- A registered name (``smollm2``) resolves to its safetensors cache, fetched once (``models/registry.py``).
- Device and weight dtype come from the one policy in ``finemed/core/runtime.py``. Under FSDP (``runtime.sharded``) the
  model stays where transformers built it, on the host (local rank 0) or the meta device (the other ranks, with
  accelerate's ``fsdp_cpu_ram_efficient_loading``): FSDP moves the shards to the GPUs.
- ``attn_implementation`` goes to ``from_pretrained`` (transformers checks it there; setting it afterwards skips the
  check and fails at the first forward). ``flash_attention_2`` needs the optional ``gpu`` extra (``flash-attn``):
  without it, or without CUDA, the load falls back to SDPA with one warning.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from finemed.core.artifacts import atomic_path
from finemed.core.config import FinemedError
from finemed.core.logs import get_logger
from finemed.core.runtime import Runtime, cuda_available, resolve
from finemed.models.registry import resolve_model_path

log = get_logger(__name__)
FLASH_ATTENTION = ("flash_attention_2", "flash_attention_3")

JSON_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
PICKLE_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16",
          "fp16": "float16"}


class UnsafeWeightsError(FinemedError):
    """Pickle weights were found and ``allow_pickle`` is off."""


def check_weights(path: Path, allow_pickle: bool = False) -> None:
    """Weights a model dir may load: safetensors with readable headers, or pickle only when allowed."""
    safes = sorted(path.glob("*.safetensors"))
    pickles = [p for pat in PICKLE_PATTERNS for p in path.glob(pat)]
    if not safes and pickles and not allow_pickle:
        raise UnsafeWeightsError(f"{path}: only pickle weights ({pickles[0].name}); loading them can run code. "
                                 f"Convert to safetensors or pass --allow-pickle (config key allow_pickle: true) "
                                 f"if you trust the source")
    if not safes and not pickles:
        raise FinemedError(f"{path}: no model weights (*.safetensors) found; pass a complete HF model dir")
    for file in safes:
        check_safetensors(file)


def check_model(spec: str | Path, allow_pickle: bool = False, revision: str | None = None) -> Path:
    """The model dir of ``spec`` with its weights checked, without importing torch: call it before a slow load."""
    path = resolve_model_path(spec, revision=revision)
    check_weights(path, allow_pickle)
    for name in JSON_FILES:
        check_json(path / name)
    return path


def check_json(file: Path) -> None:
    """A model dir's JSON file (config, tokenizer) that exists must parse: else one line naming it."""
    if not file.is_file():
        return
    try:
        data = json.loads(file.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        raise FinemedError(f"{file}: not valid JSON ({err}); the file is truncated or corrupt, copy or download "
                           f"the model again") from None
    if not isinstance(data, dict):
        raise FinemedError(f"{file}: expected a JSON object, got a {type(data).__name__}; pass a complete HF model dir")


def check_safetensors(file: Path) -> None:
    """Open ``file``'s header (no tensor is read): a truncated or corrupt file is one line naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="numpy"):
            pass
    except (SafetensorError, OSError) as err:
        raise FinemedError(f"{file}: unreadable safetensors ({err}); the file is truncated or corrupt, "
                           f"copy or download it again") from None


def resolve_dtype(dtype: Any) -> Any:
    """A torch dtype from a name (``float32``, ``bf16``, ...) or a torch dtype; None means float32."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise FinemedError(f"dtype {dtype!r} unknown; expected one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[dtype])


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False):
    """A tokenizer from a model/tokenizer dir: ``PreTrainedTokenizerFast`` when tokenizer.json exists."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


@lru_cache(maxsize=None)
def _warn_sdpa_fallback(asked: str, why: str) -> None:
    log.warning("attn_implementation %s: %s; using sdpa instead (install the gpu extra: pip install "
                "'finemed[gpu]')", asked, why)


def attention_implementation(asked: str | None, device: str) -> str | None:
    """``asked``, or ``sdpa`` (one warning per process) where flash-attention cannot run: the ``flash_attn``
    package is not importable, or the model is not placed on CUDA."""
    if asked not in FLASH_ATTENTION:
        return asked
    package = "flash_attn_interface" if asked == "flash_attention_3" else "flash_attn"
    if importlib.util.find_spec(package) is None:
        _warn_sdpa_fallback(asked, f"the {package} package is not installed")
        return "sdpa"
    if not device.startswith("cuda") or not cuda_available():
        _warn_sdpa_fallback(asked, f"flash-attention runs on CUDA only, this model runs on {device}")
        return "sdpa"
    return asked


def load_causal_lm(spec: str | Path, *, runtime: Runtime | None = None, device: str = "auto",
                   dtype: Any = None, train: bool = False, allow_pickle: bool = False,
                   trust_remote_code: bool = False, with_tokenizer: bool = True,
                   attn_implementation: str | None = None, revision: str | None = None):
    """Load ``(model, tokenizer)`` from a registered name, an HF dir or a hub id (at ``revision``), safely, in eval
    mode.

    Where and in which dtype come from ``runtime`` (or ``finemed.core.runtime.resolve(device)``); an explicit
    ``dtype`` overrides the weight dtype only. Under FSDP (``runtime.sharded``) the model is left on the host or
    the meta device for FSDP to shard. ``attn_implementation`` (``sdpa``, ``flash_attention_2``, ...) is passed
    to ``from_pretrained``, with the SDPA fall-back of :func:`attention_implementation`.
    """
    path = check_model(spec, allow_pickle, revision)  # a bad model dir fails before torch is imported
    from transformers import AutoModelForCausalLM

    rt = runtime or resolve(device, train=train)
    extra = {}
    attn = attention_implementation(attn_implementation, rt.device)
    if attn:
        extra["attn_implementation"] = attn
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=resolve_dtype(dtype) if dtype is not None else rt.weight_dtype,
        trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True, **extra)
    if not rt.sharded and not any(p.is_meta for p in model.parameters()):
        model.to(rt.device)
    model.eval()
    tok = load_tokenizer(path, trust_remote_code=trust_remote_code) if with_tokenizer else None
    return model, tok


def count_parameters(model: Any) -> int:
    """Unique parameters (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def save_model(model, tokenizer, out: Path | str) -> Path:
    """Save model (safetensors) and tokenizer atomically into ``out``."""

    out = Path(out)
    with atomic_path(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return out

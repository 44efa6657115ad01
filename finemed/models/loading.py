"""Load and save HF causal LMs safely.

- ``trust_remote_code`` stays off unless asked for.
- Only safetensors weights load unless ``allow_pickle=True``: a dir with only ``pytorch_model.bin`` / ``*.pt``
  is refused with one line, because unpickling runs arbitrary code.
- Tokenizers load with ``PreTrainedTokenizerFast`` where a ``tokenizer.json`` exists (DESIGN.md trap: AutoTokenizer
  on a Qwen2-config dir swaps in Qwen2Tokenizer and changes a custom tokenizer's ids).
- A registered name (``smollm2``) resolves to its safetensors cache, fetched once.
"""

from __future__ import annotations

from pathlib import Path

import torch

from finemed.config import FinemedError

PICKLE_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


class UnsafeWeightsError(FinemedError):
    """Pickle weights were found and ``allow_pickle`` is off."""


def resolve_model_path(spec: str | Path) -> Path:
    """``smollm2`` → the cached safetensors dir (fetching it once); otherwise an existing local HF dir."""
    from finemed.models.smollm2 import REGISTERED, ensure_model

    if str(spec) in REGISTERED:
        return ensure_model(str(spec))
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise FinemedError(f"model {spec!r}: not a registered name ({', '.join(REGISTERED)}) and no such "
                           f"directory; pass an HF model dir or run `finemed models fetch smollm2`")
    if not (path / "config.json").is_file():
        raise FinemedError(f"model dir {path} has no config.json; pass an HF model directory")
    return path


def check_weights(path: Path, allow_pickle: bool = False) -> None:
    safes = list(path.glob("*.safetensors"))
    pickles = [p for pat in PICKLE_PATTERNS for p in path.glob(pat)]
    if not safes and pickles and not allow_pickle:
        raise UnsafeWeightsError(f"{path}: only pickle weights ({pickles[0].name}); loading them can run code. "
                                 f"Convert to safetensors or pass --allow-pickle if you trust the source")
    if not safes and not pickles:
        raise FinemedError(f"{path}: no model weights (*.safetensors) found; pass a complete HF model dir")


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise FinemedError(f"dtype {dtype!r} unknown; expected one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False):
    """A tokenizer from a model/tokenizer dir: ``PreTrainedTokenizerFast`` when tokenizer.json exists."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


def load_causal_lm(spec: str | Path, *, dtype: str | torch.dtype | None = "float32", device: str = "cpu",
                   allow_pickle: bool = False, trust_remote_code: bool = False, with_tokenizer: bool = True):
    """Load ``(model, tokenizer)`` from a registered name or an HF dir, safely. The model is in eval mode."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(spec)
    check_weights(path, allow_pickle)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code,
        use_safetensors=None if allow_pickle else True)
    model.to(device).eval()
    tok = load_tokenizer(path, trust_remote_code=trust_remote_code) if with_tokenizer else None
    return model, tok


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def save_model(model, tokenizer, out: Path | str) -> Path:
    """Save model (safetensors) and tokenizer atomically into ``out``."""
    from finemed.artifacts import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return out

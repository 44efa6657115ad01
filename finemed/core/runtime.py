"""The one device and dtype policy. Every path that loads a model asks here; no stage decides on its own.

- ``device``: ``auto | cpu | cuda | cuda:N``. ``auto`` is the local rank's GPU (``cuda:$LOCAL_RANK``) where
  CUDA is available, else the CPU.
- ``dtype``: ``auto | float32 | bfloat16 | float16`` is the *compute* precision. ``auto`` is bf16 on a GPU
  that supports it (fp16 on one that does not), and bf16 autocast on a CPU with native bf16
  (avx512_bf16/AMX), else fp32.
- Weights: for inference (``train=False``) a GPU holds them in the compute dtype; a CPU keeps fp32 weights
  and runs bf16 autocast (CPU kernels are fast for autocast, and fp32 master weights lose nothing).
  For training, weights stay fp32 and the compute dtype is mixed precision (autocast / Trainer ``bf16``).
  Under FSDP (``sharded=True``) a training model loads in the compute dtype, on the host (local rank 0) or the
  meta device (the other ranks), never whole on a GPU: accelerate shards it onto the GPUs and then upcasts each
  rank's shard to fp32 master weights where mixed precision is on (``fsdp2_prepare_model``), so no GPU ever holds
  the whole model, and no host holds it in fp32.

Stage configs declare ``device: Device = "auto"`` and ``dtype: DType = "auto"`` and call :func:`resolve`.
torch is imported lazily so that configs validate without it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AfterValidator
from typing_extensions import Annotated

from finemed.core.config import FinemedError

DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
               "float16": "float16", "fp16": "float16", "auto": "auto"}


def _check_device(value: str) -> str:
    v = value.strip().lower()
    if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise ValueError("expected auto, cpu, cuda or cuda:N")


def _check_dtype(value: str) -> str:
    v = value.strip().lower()
    if v not in DTYPE_NAMES:
        raise ValueError("expected auto, float32, bfloat16 or float16")
    return DTYPE_NAMES[v]


Device = Annotated[str, AfterValidator(_check_device)]
DType = Annotated[str, AfterValidator(_check_dtype)]
Precision = Literal["float32", "bfloat16", "float16"]


def cpu_bf16_supported() -> bool:
    """True where the CPU has native bf16 (avx512_bf16 / AMX): autocast is then ~3x faster than fp32."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported()) or bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class Runtime:
    """A resolved policy: where the model lives, its weight dtype and the autocast dtype (None: no autocast)."""

    device: str  # "cpu" or "cuda:N"
    compute: Precision
    train: bool = False
    sharded: bool = False  # FSDP training: the model loads on the host/meta and FSDP places its shards

    @property
    def load_device(self) -> str:
        """Where a loaded model goes before training: the host under FSDP (FSDP moves the shards), else ``device``."""
        return "cpu" if self.sharded else self.device

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def weight_dtype(self) -> Any:
        import torch

        if self.train and self.sharded:
            return getattr(torch, self.compute)  # FSDP upcasts each shard to fp32 where mixed precision is on
        if self.train or not self.is_cuda:
            return torch.float32
        return getattr(torch, self.compute)

    @property
    def autocast_dtype(self) -> Any:
        import torch

        if self.compute == "float32":
            return None
        if self.is_cuda and not self.train:
            return None  # weights already hold the compute dtype
        return getattr(torch, self.compute)

    def autocast(self):
        """The autocast context for forward passes (a no-op where weights already have the compute dtype)."""
        import torch

        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda" if self.is_cuda else "cpu", dtype=dtype)

    def save_dtype(self, choice: str = "auto") -> Any:
        """The dtype a trained model is saved in: ``choice`` (float32/bfloat16), or for ``auto`` bf16 where it
        trained in bf16 on a GPU (the real-scale path: half the bytes), else fp32 (CPU runs train fp32 weights
        under autocast and keep them: small models, and the miniature results were measured on them)."""
        import torch

        if choice != "auto":
            return getattr(torch, DTYPE_NAMES[choice])
        return torch.bfloat16 if self.is_cuda and self.compute == "bfloat16" else torch.float32

    def trainer_kwargs(self) -> dict[str, Any]:
        """``TrainingArguments`` keys for this policy: CPU or GPU, and bf16/fp16 mixed precision."""
        return {"use_cpu": not self.is_cuda, "bf16": self.compute == "bfloat16", "fp16": self.compute == "float16"}

    def describe(self) -> dict[str, str]:
        out = {"device": self.device, "compute_dtype": self.compute,
               "weight_dtype": str(self.weight_dtype).replace("torch.", "")}
        return out | ({"sharded": "fsdp"} if self.sharded else {})


def resolve_device(device: str = "auto") -> str:
    device = _check_device(device)
    if device == "auto":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda_available() else "cpu"
    if device.startswith("cuda") and not cuda_available():
        raise FinemedError(f"device {device!r} asked for, but CUDA is not available here; use device: auto or cpu")
    if device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def resolve_compute(dtype: str, device: str) -> Precision:
    dtype = _check_dtype(dtype)
    if dtype != "auto":
        return dtype  # type: ignore[return-value]
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_bf16_supported() else "float32"


def resolve(device: str = "auto", dtype: str = "auto", *, train: bool = False, sharded: bool = False) -> Runtime:
    """The policy for a stage: ``resolve(cfg.device, cfg.dtype)``; ``sharded``: training under FSDP."""
    dev = resolve_device(device)
    return Runtime(device=dev, compute=resolve_compute(dtype, dev), train=train, sharded=sharded)


def for_model(model) -> Runtime:
    """The policy of an already-loaded model: its device, and bf16 autocast on a CPU that supports it."""
    param = next(model.parameters())
    if param.device.type == "cuda":
        return Runtime(device=str(param.device), compute=str(param.dtype).replace("torch.", ""))  # type: ignore[arg-type]
    return Runtime(device="cpu", compute=resolve_compute("auto", "cpu"))


def device_memory_gib(device: str = "auto") -> float:
    """Total memory of ``device`` in GiB: the GPU's (torch) or, on CPU, the machine's RAM."""
    dev = resolve_device(device)
    if dev.startswith("cuda"):
        import torch

        return torch.cuda.get_device_properties(int(dev.split(":")[1]) if ":" in dev else 0).total_memory / 2 ** 30
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30

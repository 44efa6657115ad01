"""Training compute: FLOPs per token, GPU-hours at a stated MFU, and checkpoint disk, from the architecture alone.

FLOPs per token follow Megatron-LM (Narayanan et al. 2021, eq. 3), for ``l`` layers, hidden ``h``, sequence ``s``
and vocabulary ``V``, forward plus backward with activation recomputation (one extra forward; ``72`` instead of
``96`` without)::

    F(token) = 96 · l · h² · (1 + s / (6h) + V / (16 · l · h))

This is the formula the tokenizer cost model uses (FLOPs per word = fertility × FLOPs per token) and the one
``finemed plan`` sizes training stages with. GPU-hours = tokens × F / (MFU × peak) / 3600, summed over GPUs.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from finemed.core.config import FinemedError, StageConfig
from finemed.models import arch
from finemed.models.memory import GIB, MemoryEstimate, training_memory

# dense bf16 peak TFLOP/s per GPU (vendor data sheets, without sparsity)
PEAK_TFLOPS = {"h100": 989.0, "h200": 989.0, "a100": 312.0, "l40s": 362.0, "a10g": 125.0}


class ModelShape(StageConfig):
    """The transformer whose training cost is estimated."""

    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    seq_len: int = Field(gt=0)
    name: str = "custom"


def flops_per_token(shape: ModelShape, vocab_size: int, *, recompute: bool = True) -> float:
    """Megatron's training FLOPs per token (forward + backward [+ recomputed forward])."""
    if vocab_size <= 0:
        raise FinemedError(f"vocab size must be positive, got {vocab_size}")
    layers, h, s = shape.layers, shape.hidden, shape.seq_len
    factor = 96 if recompute else 72
    return factor * layers * h * h * (1 + s / (6 * h) + vocab_size / (16 * layers * h))


class TrainingEstimate(BaseModel):
    model: str
    parameters: int
    tokens: float
    flops: float
    gpu_hours: float
    mfu: float
    gpu: str
    memory: MemoryEstimate
    checkpoint_gib: float
    final_model_gib: float


def training_estimate(model: str, *, tokens: float, seq_len: int, micro_batch: int, processes: int = 1,
                      strategy: str = "ddp", mixed_precision: bool = True, gradient_checkpointing: bool = False,
                      mfu: float = 0.4, gpu: str = "h100", trainable: int | None = None) -> TrainingEstimate:
    """FLOPs, GPU-hours, per-process memory and disk of training ``model`` on ``tokens`` tokens."""
    if gpu not in PEAK_TFLOPS:
        raise FinemedError(f"gpu {gpu!r} unknown; expected one of {', '.join(PEAK_TFLOPS)}")
    if not 0 < mfu <= 1:
        raise FinemedError(f"MFU {mfu} must be in (0, 1]")
    cfg = arch.config_dict(model)
    params = arch.parameter_counts(model)["total"]
    shape = ModelShape(layers=cfg["num_hidden_layers"], hidden=cfg["hidden_size"], seq_len=seq_len)
    flops = tokens * flops_per_token(shape, cfg["vocab_size"], recompute=gradient_checkpointing)
    memory = training_memory(params, layers=shape.layers, hidden=shape.hidden, vocab=cfg["vocab_size"],
                             seq_len=seq_len, micro_batch=micro_batch, processes=processes,
                             strategy=strategy, mixed_precision=mixed_precision,  # type: ignore[arg-type]
                             gradient_checkpointing=gradient_checkpointing, trainable=trainable)
    trained = params if trainable is None else trainable
    return TrainingEstimate(model=model, parameters=params, tokens=tokens, flops=flops,
                            gpu_hours=flops / (mfu * PEAK_TFLOPS[gpu] * 1e12) / 3600, mfu=mfu, gpu=gpu,
                            memory=memory, checkpoint_gib=round((4 * params + 8 * trained) / GIB, 2),
                            final_model_gib=round(2 * params / GIB, 2))

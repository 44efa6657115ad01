"""Per-process training memory, estimated from the architecture before anything is loaded.

The terms, for ``P`` parameters, ``N`` processes, ``L`` layers, hidden ``h``, ``a`` heads, vocabulary ``V``,
sequence ``s`` and micro-batch ``b``:

- weights: fp32 master copy, ``4P`` (DDP) or ``4P/N`` (FSDP full shard) plus, under FSDP, the gathered bf16
  units in flight (two decoder layers: the current one and the prefetched one);
- gradients ``4P`` or ``4P/N``; AdamW moments ``8P`` or ``8P/N``;
- activations (Korthikanti et al. 2022, eq. 2, with fused SDPA/flash attention, which keeps no ``a·s²`` scores):
  ``34·s·b·h`` bytes per layer in 16-bit (x2 in fp32); with gradient checkpointing only each layer's input
  (``2·s·b·h``) plus one layer's full set;
- logits: bf16 logits, their fp32 upcast for the loss and its gradient, ``10·s·b·V`` bytes;
- a fixed overhead for the CUDA context and allocator slack (1.5 GiB).

No library exposes this for an arbitrary HF config (accelerate's ``estimate-memory`` counts weights and Adam
only), so the arithmetic is here. It is an estimate: the stage checks it against the device before starting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

GIB = 1 << 30
OVERHEAD_BYTES = int(1.5 * GIB)


class MemoryEstimate(BaseModel):
    parameters: int
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    logits_gib: float
    overhead_gib: float
    total_gib: float


def training_memory(parameters: int, *, layers: int, hidden: int, vocab: int, seq_len: int, micro_batch: int,
                    processes: int = 1, strategy: Literal["ddp", "fsdp"] = "ddp", mixed_precision: bool = True,
                    gradient_checkpointing: bool = False, trainable: int | None = None,
                    overhead: int = OVERHEAD_BYTES) -> MemoryEstimate:
    """The per-process estimate (GiB per term) of full fine-tuning with AdamW, or of ``trainable`` parameters."""
    trainable = parameters if trainable is None else trainable
    shard = processes if strategy == "fsdp" else 1
    weights = 4 * parameters / shard
    if strategy == "fsdp":
        weights += 2 * 2 * parameters / max(layers, 1)  # two gathered 16-bit layers in flight
    grads = 4 * trainable / shard
    optim = 8 * trainable / shard
    act_bytes = 2 if mixed_precision else 4
    per_layer = 17 * act_bytes * seq_len * micro_batch * hidden  # 34 s b h in 16-bit
    if gradient_checkpointing:
        acts = layers * act_bytes * seq_len * micro_batch * hidden + per_layer
    else:
        acts = layers * per_layer
    logits = 10 * seq_len * micro_batch * vocab
    total = weights + grads + optim + acts + logits + overhead
    return MemoryEstimate(parameters=parameters, **{k: round(v / GIB, 2) for k, v in {
        "weights_gib": weights, "gradients_gib": grads, "optimizer_gib": optim, "activations_gib": acts,
        "logits_gib": logits, "overhead_gib": overhead, "total_gib": total}.items()})


def inference_memory(parameters: int, *, bytes_per_param: int = 2, overhead: int = OVERHEAD_BYTES) -> float:
    """GiB to hold a model for inference in 16-bit (KV cache and activations of small batches not included)."""
    return round((bytes_per_param * parameters + overhead) / GIB, 2)

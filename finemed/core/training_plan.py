"""Training estimates shared by ``train.cpt`` and ``train.distill``: the ``@planner`` numbers and the memory check.

:func:`estimate` wraps :func:`finemed.models.compute.training_estimate` into the dict ``finemed plan`` shows
(tokens, FLOPs, GPU-hours, memory per process and its breakdown, disk); :func:`check_memory` refuses a run,
with one line, whose per-process estimate exceeds the device memory (GPU total, or RAM shared by the local
processes on CPU).
"""

from __future__ import annotations

from typing import Any

from finemed.core.config import FinemedError
from finemed.core.launch import LaunchConfig
from finemed.core.runtime import device_memory_gib
from finemed.models.compute import training_estimate


def estimate(model: str, tokens: float, *, seq_len: int, micro_batch: int, launch: LaunchConfig | None,
             save_total_limit: int = 1, mixed_precision: bool = True, gradient_checkpointing: bool = False,
             mfu: float = 0.4, gpu: str = "h100", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``finemed plan``'s estimate of training ``model`` on ``tokens`` tokens under ``launch``."""
    launch = launch or LaunchConfig()
    est = training_estimate(model, tokens=tokens, seq_len=seq_len, micro_batch=micro_batch,
                            processes=launch.world_size, strategy=launch.strategy, mixed_precision=mixed_precision,
                            gradient_checkpointing=gradient_checkpointing, mfu=mfu, gpu=gpu)
    return {"model": model, "parameters": est.parameters, "tokens": est.tokens, "flops": est.flops,
            "gpu_hours": round(est.gpu_hours, 3), "processes": launch.world_size, "strategy": launch.strategy,
            "memory_gib_per_process": est.memory.total_gib, "memory": est.memory.model_dump(),
            "disk_gib": round(est.checkpoint_gib * save_total_limit + est.final_model_gib, 2), **(extra or {})}


def check_memory(kind: str, per_process_gib: float, device: str, launch: LaunchConfig | None) -> None:
    """Refuse to start when the estimate exceeds the device memory (on CPU: RAM / local processes)."""
    launch = launch or LaunchConfig()
    total = device_memory_gib(device)
    shared = launch.processes if not device_is_gpu(device) else 1
    if per_process_gib * shared > total:
        raise FinemedError(f"{kind}: estimated {per_process_gib:.1f} GiB per process x {shared} exceeds the "
                           f"{total:.1f} GiB of {device}; use launch.strategy: fsdp, more processes, a smaller "
                           f"batch_size/seq_len or gradient_checkpointing")


def device_is_gpu(device: str) -> bool:
    return device.startswith("cuda")

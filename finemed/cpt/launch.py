"""``finemed train cpt --emit-accelerate-config F``: the accelerate FSDP config of :mod:`finemed.core.launch`, for
running ``accelerate launch --config_file F -m finemed.cli train cpt ...`` by hand (``finemed run`` with
``launch:`` in the stage config does this itself)."""

from __future__ import annotations

from pathlib import Path

from finemed.core.config import validate
from finemed.core.launch import LaunchConfig, accelerate_config, decoder_layer_class
from finemed.core.launch import write_accelerate_config as _write

__all__ = ["decoder_layer_class", "fsdp_accelerate_config", "write_accelerate_config"]


def fsdp_accelerate_config(model: str | None = None, num_processes: int = 8, layer_cls: str | None = None) -> dict:
    """An accelerate FSDP2 config for ``num_processes`` GPUs (sharded checkpoints, bf16, layer wrapping)."""
    launch = _fsdp(num_processes, layer_cls)
    return accelerate_config(launch, model)


def _fsdp(num_processes: int, layer_cls: str | None = None) -> LaunchConfig:
    return validate(LaunchConfig, {"processes": num_processes, "strategy": "fsdp", "mixed_precision": "bf16",
                                   "layer_cls": layer_cls}, "--num-processes")


def write_accelerate_config(path: Path | str, model: str | None, num_processes: int = 8) -> Path:
    """Write :func:`fsdp_accelerate_config` as YAML to ``path``."""
    return _write(path, _fsdp(num_processes), model)

"""Multi-GPU launch: an accelerate FSDP2 config for CPT (``finemed train cpt --emit-accelerate-config F``).

Then ``accelerate launch --config_file F -m finemed.cli train cpt -c cpt.yaml --out runs/cpt``: every rank
runs the same stage; ``device: auto`` picks ``cuda:$LOCAL_RANK``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from finemed.artifacts import atomic_write_text
from finemed.models.registry import resolve_model_path


def decoder_layer_class(model: str) -> str:
    """The decoder-layer class name of ``model`` (``Qwen2DecoderLayer``, ...), from its config.json."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(resolve_model_path(model)))
    arch = (cfg.architectures or ["LlamaForCausalLM"])[0]
    return arch.replace("ForCausalLM", "DecoderLayer")


def fsdp_accelerate_config(model: str | None = None, num_processes: int = 8, layer_cls: str | None = None) -> dict:
    """An accelerate FSDP2 config for multi-GPU CPT (full sharding, bf16, transformer-layer wrapping)."""
    if layer_cls is None and model:
        layer_cls = decoder_layer_class(model)
    return {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "FSDP", "mixed_precision": "bf16",
        "num_machines": 1, "num_processes": num_processes, "machine_rank": 0, "main_training_function": "main",
        "rdzv_backend": "static", "same_network": True, "use_cpu": False, "downcast_bf16": "no",
        "fsdp_config": {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": layer_cls or "LlamaDecoderLayer",
            "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,
            "fsdp_activation_checkpointing": False},
    }


def write_accelerate_config(path: Path | str, model: str | None, **kwargs) -> Path:
    """Write :func:`fsdp_accelerate_config` (``kwargs``: its options) as YAML to ``path``."""
    acc = fsdp_accelerate_config(model, **kwargs)
    atomic_write_text(Path(path), yaml.safe_dump(acc, sort_keys=False))
    return Path(path)

"""Student initialisation from a teacher by layer dropping (the KD study's same-family students).

Keep every k-th decoder layer, or a given list, and copy the embeddings, final norm and LM head. This is a
few lines on top of ``from_config`` + state-dict surgery; no library offers it for arbitrary HF decoders.
"""

from __future__ import annotations

import copy

from pydantic import BaseModel

from finemed.core.config import FinemedError
from finemed.models.loading import count_parameters


class StudentInfo(BaseModel):
    kept_layers: list[int]
    teacher_layers: int
    teacher_parameters: int
    student_parameters: int
    reduction: float  # 1 - P_student / P_teacher


def _decoder_layers(model):
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return path, obj
    raise FinemedError(f"{type(model).__name__}: no decoder layer list found; pass a Llama/GPT-style causal LM")


def select_layers(n_layers: int, keep_every: int | None = None, layers: list[int] | None = None) -> list[int]:
    if (keep_every is None) == (layers is None):
        raise FinemedError("student init: give exactly one of keep_every or layers")
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < n_layers]
        if bad or not layers:
            raise FinemedError(f"student init: layers {bad or layers} out of range 0..{n_layers - 1}")
        if len(set(layers)) != len(layers):
            raise FinemedError("student init: layer list has repeats; list each layer once")
        return sorted(layers)
    if keep_every < 1 or keep_every > n_layers:
        raise FinemedError(f"student init: keep_every={keep_every} must be within 1..{n_layers}")
    return list(range(0, n_layers, keep_every))


def init_student(teacher, keep_every: int | None = None, layers: list[int] | None = None):
    """Return ``(student, StudentInfo)``: a copy of ``teacher`` with only the chosen decoder layers."""
    import torch

    path, teacher_layers = _decoder_layers(teacher)
    keep = select_layers(len(teacher_layers), keep_every, layers)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in keep]
    student = type(teacher)(config).to(dtype=next(teacher.parameters()).dtype)
    _, student_layers = _decoder_layers(student)
    with torch.no_grad():
        src = teacher.state_dict()
        prefix = path + "."
        dst = {}
        for key, value in src.items():
            if key.startswith(prefix):
                idx, rest = key[len(prefix):].split(".", 1)
                if int(idx) in keep:
                    dst[f"{prefix}{keep.index(int(idx))}.{rest}"] = value
            else:
                dst[key] = value
        missing, unexpected = student.load_state_dict(dst, strict=False)
        missing = [m for m in missing if "rotary" not in m]
        if missing or unexpected:
            raise FinemedError(f"student init: state dict mismatch (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]})")
    for i, layer in enumerate(student_layers):  # attention layers carry their index for the KV cache
        attn = getattr(layer, "self_attn", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = i
    student.generation_config = copy.deepcopy(teacher.generation_config)
    pt, ps = count_parameters(teacher), count_parameters(student)
    info = StudentInfo(kept_layers=keep, teacher_layers=len(teacher_layers), teacher_parameters=pt,
                       student_parameters=ps, reduction=round(1 - ps / pt, 6))
    return student.eval(), info

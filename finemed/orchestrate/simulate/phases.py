"""Measure one simulated phase: bytes a model holds and where, FSDP wrapping, one training step, one eval forward.

The step is torchtitan's memory estimator, applied to the HF model class the stage loads: under ``FakeTensorMode``
and a ``fake`` process group the model is wrapped with ``fully_shard`` exactly where accelerate's FSDP2 auto-wrap
policy would wrap it (:func:`accelerate.utils.fsdp_utils.fsdp2_prepare_auto_wrap_policy`, with the layer classes
``finemed.core.launch.accelerate_config`` gives), with the launch's mixed-precision policy, and one forward,
backward and
AdamW step at the stage's micro batch and sequence length runs inside ``FSDPMemTracker``. What the tracker counts
is what the GPU caching allocator would hold for tensors; allocator fragmentation, CUDA context (~0.5-1 GiB), NCCL
buffers and kernel workspaces are not in it.
"""

from __future__ import annotations

from typing import Any

from finemed.core.config import FinemedError
from finemed.orchestrate.simulate.fakes import PLACEMENT


def model_bytes(model: Any) -> int:
    """Unique parameter and buffer bytes of ``model`` (tied weights once)."""
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def placement(model: Any) -> str:
    """``gpu``, ``host`` or ``meta``: where the stage put ``model`` (recorded by the fake loader)."""
    where = str(getattr(model, PLACEMENT, "cpu"))
    return "gpu" if where.startswith("cuda") else "meta" if where == "meta" else "host"


def measurable(model: Any) -> None:
    """Attention through SDPA for the fake forward (flash kernels do not run on fake CPU tensors; they hold no
    more memory than SDPA's memory-efficient path)."""
    if model is not None and getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        model.config._attn_implementation = "sdpa"


def dtype_name(model: Any) -> str:
    return str(next(model.parameters()).dtype).replace("torch.", "")


def wrap_policy(model: Any, layer_cls: str, where: str) -> Any:
    """accelerate's FSDP2 auto-wrap policy for ``layer_cls``: a one-line error where the model lacks the class."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                                            transformer_cls_names_to_wrap=layer_cls.split(","))
    try:
        return fsdp2_prepare_auto_wrap_policy(plugin, model)
    except ValueError as err:
        present = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.endswith("Layer")})
        raise FinemedError(f"{where}: FSDP wrap fails: {err} (the model has {', '.join(present)}); accelerate "
                           f"raises this at prepare") from None


def shard(model: Any, policy: Any, world: int, bf16: bool) -> Any:
    """``fully_shard`` every module the policy picks, then the root, on a CPU mesh of ``world`` fake ranks."""
    import torch
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    with unset_fake_temporarily():
        mesh = init_device_mesh("cpu", (world,))
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else \
        MixedPrecisionPolicy()
    for module in list(model.modules()):
        if module is not model and policy is not None and policy(module):
            fully_shard(module, mesh=mesh, mp_policy=mp, reshard_after_forward=True)
    fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=True)
    return model


def step_peak(model: Any, *, batch: int, seq_len: int, fsdp: bool = True,
              autocast_bf16: bool = False) -> dict[str, int]:
    """Peak bytes of one forward + backward of ``model`` (fake tensors) by kind, plus the AdamW moments.

    The moments (``opt``: exp_avg and exp_avg_sq, fp32, the shape of each rank's parameter shard) are added from
    the parameters: they live through the whole step. ``FSDPMemTracker`` run over ``optimizer.step`` counted
    about 9x that on the fake CPU tensors here (its optimizer hook, not the fused kernel), so it is left out.
    """
    import torch
    from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker
    from torch.distributed._tools.mem_tracker import MemTracker

    ids = torch.randint(0, model.config.vocab_size, (batch, seq_len))
    tracker = FSDPMemTracker(model) if fsdp else MemTracker()
    if not fsdp:
        tracker.track_external(model)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast_bf16 else torch.autocast("cpu", enabled=False)
    with tracker:
        with ctx:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    peak = tracker.get_tracker_snapshot("peak")
    dev = max(peak, key=lambda d: peak[d].get("Total", 0)) if peak else None
    out = {str(k).split(".")[-1].lower(): int(v) for k, v in (peak.get(dev, {}) if dev is not None else {}).items()}
    moments = 2 * sum(getattr(p, "_local_tensor", p).numel() * 4 for p in model.parameters() if p.requires_grad)
    out["opt"] = moments
    out["total"] = out.get("total", 0) + moments
    model.zero_grad(set_to_none=True)
    return out


def eval_peak(model: Any, *, batch: int, seq_len: int) -> int:
    """Peak bytes of one no-grad forward at the stage's eval batch and length (weights included)."""
    import torch
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq_len))
    with tracker, torch.no_grad():
        model(input_ids=ids)
    peak = tracker.get_tracker_snapshot("peak")
    return max((int(v.get("Total", 0)) for v in peak.values()), default=0)

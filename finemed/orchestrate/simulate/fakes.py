"""The fake world a simulated stage runs in: fake tensors, a fake process group and a fake GPU.

Why by hand: torch gives the pieces (``FakeTensorMode``, the ``fake`` process-group backend over ``FakeStore``,
``FSDPMemTracker``) and torchtitan's memory estimator shows how to combine them for its own trainer; nothing
combines them with the HF loading path finemed's stages take. This module does only that plumbing:

- a ``fake`` process group of the recipe's world size (this process is rank 0, the rank that loads and evaluates);
- the launched-worker environment (``WORLD_SIZE``, ``RANK``, ``FINEMED_LAUNCHED``), so a stage runs as one of a
  launched job and never launches;
- a CUDA machine as finemed's runtime policy sees it (``cuda_available`` and bf16 support), so ``resolve`` answers
  as it would on the GPU node;
- ``AutoModelForCausalLM.from_pretrained`` builds the bundled architecture from its config under fake tensors (no
  weights, no memory; ``dtype`` and the meta device as asked), and a model's ``.to(device)`` is recorded on the
  model as its placement (fake tensors stay on the host; where they *would* sit is what the phases report);
- tokenizers are a stub (the simulated phases never tokenise text).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import finemed.models.loading as loading
from finemed.core import launch, runtime
from finemed.models.arch import config_dict

PLACEMENT = "_finemed_sim_device"  # attribute on a model: where the stage put it ("cuda:0", "cpu", "meta")


class StubTokenizer:
    """Stands in for a hub tokenizer the simulation never runs: an empty vocabulary, EOS id 0."""

    eos_token_id = 0
    pad_token_id = 0

    def get_vocab(self) -> dict[str, int]:
        return {}

    def __len__(self) -> int:
        return 0


def model_dir(spec: str, root: Path) -> Path:
    """A dir holding only ``spec``'s config.json (bundled architecture or a local dir's config)."""
    out = root / str(abs(hash(spec)))
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_dict(str(spec))
    cfg.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return out


def cast(model: Any, dtype: Any) -> None:
    """Cast floating parameters and buffers to ``dtype`` by replacing them (tied ones stay tied): ``Module.to``
    cannot swap fake tensors in place."""
    import torch

    done: dict[int, Any] = {}
    for module in model.modules():
        for store, wrap in ((module._parameters, True), (module._buffers, False)):
            for name, t in list(store.items()):
                if t is None or not t.is_floating_point() or t.dtype == dtype:
                    continue
                if id(t) not in done:
                    new = t.detach().to(dtype)
                    done[id(t)] = torch.nn.Parameter(new, requires_grad=t.requires_grad) if wrap else new
                store[name] = done[id(t)]


def record_placement(model: Any) -> None:
    """``model.to(device)`` records the placement; a dtype in the call is applied (fake tensors cast fine)."""
    import torch

    def to(*args: Any, **kw: Any) -> Any:
        dtype = kw.pop("dtype", None)
        device = kw.pop("device", None)
        for a in args:
            if isinstance(a, torch.dtype):
                dtype = a
            elif isinstance(a, (str, torch.device)):
                device = a
        if device is not None:
            setattr(model, PLACEMENT, str(torch.device(device)))
        if dtype is not None:
            cast(model, dtype)
        return model

    model.to = to
    model.cuda = lambda *a, **k: to("cuda:0")
    model.cpu = lambda: to("cpu")


def fake_from_pretrained(path: Any, *args: Any, **kw: Any) -> Any:
    """``from_pretrained`` under fake tensors: the config's model class in the asked dtype, weights not read."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(path))
    dtype = kw.get("dtype") or kw.get("torch_dtype") or torch.float32
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    extra = {"attn_implementation": "sdpa"}  # flash kernels cannot trace on fake CPU tensors; memory is alike
    if kw.get("device_map") == "meta":
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, **extra)
    else:
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, **extra)
    setattr(model, PLACEMENT, "meta" if any(p.is_meta for p in model.parameters()) else "cpu")
    record_placement(model)
    return model


def _patch(stack: contextlib.ExitStack, obj: Any, name: str, value: Any) -> None:
    if not hasattr(obj, name):
        return
    old = getattr(obj, name)
    setattr(obj, name, value)
    stack.callback(setattr, obj, name, old)


@contextlib.contextmanager
def fake_process_group(world: int) -> Iterator[None]:
    """A ``fake``-backend process group of ``world`` ranks (this process is rank 0), torn down afterwards."""
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def simulated_node(world: int, *, fsdp: bool, ram_efficient_loading: bool = True) -> Iterator[Path]:
    """The environment of rank 0 of a ``world``-rank GPU job, with fake loading (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM

    env = {"WORLD_SIZE": str(world), "RANK": "0", "LOCAL_RANK": "0", launch.LAUNCHED_ENV: "1",
           "ACCELERATE_USE_FSDP": "true" if fsdp else "false",
           "FSDP_CPU_RAM_EFFICIENT_LOADING": "true" if fsdp and ram_efficient_loading else "false"}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="finemed-sim-") as tmp:
        for key, value in env.items():
            stack.callback(os.environ.__setitem__, key, os.environ[key]) if key in os.environ else \
                stack.callback(os.environ.pop, key, None)
            os.environ[key] = value
        root = Path(tmp)
        yes, real = (lambda *a, **k: True), runtime.cuda_available
        for mod in [m for n, m in list(sys.modules.items()) if n.startswith("finemed") and m is not None]:
            if getattr(mod, "cuda_available", None) is real:
                _patch(stack, mod, "cuda_available", yes)
        _patch(stack, torch.cuda, "is_bf16_supported", yes)
        _patch(stack, loading, "check_model", lambda spec, *a, **k: model_dir(str(spec), root))
        _patch(stack, loading, "load_tokenizer", lambda *a, **k: StubTokenizer())
        _patch(stack, AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
        yield root

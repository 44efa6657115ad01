"""Simulate ``train.cpt`` and ``train.distill`` at real size: the stage's own ``run`` loads, the phases follow.

Each stage's ``run`` is called as rank 0 of its launched job
(:func:`finemed.orchestrate.simulate.fakes.simulated_node`) and
stopped right after it has loaded its models (at ``_check_model`` for CPT, at ``build_data`` for KD): what it
loaded, in which dtype and where, is the stage's own decision. The later phases are measured on those model
objects: FSDP wrap (accelerate's policy), one optimizer step (``FSDPMemTracker``), the gather of the trained model
(the stage's own ``consolidated_model`` / ``gather_full_state``), the save and the evaluation where the stage runs
it. Rank 0 is simulated: it loads, gathers, saves and evaluates, so it holds the most.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from finemed.core import training as T
from finemed.core.config import FinemedError
from finemed.core.launch import accelerate_config
from finemed.cpt import train as cpt
from finemed.distill import train as kd
from finemed.orchestrate.simulate import phases as P
from finemed.orchestrate.simulate.fakes import cast, record_placement

GIB = 2 ** 30


class Phase(BaseModel):
    phase: str
    gpu_bytes: int = 0
    host_bytes: int = 0
    note: str = ""


class StageSim(BaseModel):
    stage: str
    kind: str
    model: str
    world: int
    strategy: str
    phases: list[Phase]
    problems: list[str] = []

    @property
    def peak_gpu(self) -> int:
        return max((p.gpu_bytes for p in self.phases), default=0)


class Captured(Exception):
    def __init__(self, frame_locals: dict[str, Any]):
        super().__init__("captured")
        self.locals = dict(frame_locals)


def _capture(*_a: Any, **_k: Any) -> None:
    raise Captured(sys._getframe(1).f_locals)


def _run_until(module: Any, stop_at: str, fn: Any, config: Any) -> dict[str, Any]:
    """Run ``fn(config, tmp)`` (the stage's ``run``) until it calls ``module.stop_at``; the caller's locals."""
    old = getattr(module, stop_at)
    setattr(module, stop_at, _capture)
    old_mpf = getattr(module, "main_process_first", None)
    if old_mpf is not None:
        module.main_process_first = contextlib.nullcontext
    try:
        with tempfile.TemporaryDirectory(prefix="finemed-sim-run-") as tmp:
            fn(config, Path(tmp))
    except Captured as cap:
        return cap.locals
    finally:
        setattr(module, stop_at, old)
        if old_mpf is not None:
            module.main_process_first = old_mpf
    raise FinemedError(f"simulate: {fn.__module__}.run finished without reaching {stop_at}; the simulator's stop "
                       f"point is out of date")


def _resident(models: dict[str, Any]) -> tuple[int, int, list[str]]:
    gpu = host = 0
    notes = []
    for name, m in models.items():
        if m is None:
            continue
        b, where = P.model_bytes(m), P.placement(m)
        gpu += b if where == "gpu" else 0
        host += b if where == "host" else 0
        notes.append(f"{name} {P.dtype_name(m)} {b / GIB:.1f} GiB on {where}")
    return gpu, host, notes


def _local_bytes(model: Any) -> int:
    total = 0
    for p in model.parameters():
        local = getattr(p, "_local_tensor", p)
        total += local.numel() * local.element_size()
    return total


def _train_phases(sim: StageSim, model: Any, *, launch: Any, spec: str, batch: int, seq_len: int, bf16: bool,
                  checkpointing: bool, others_gpu: int) -> Any:
    """wrap + step of the trained ``model`` (in place); returns the wrapped model."""
    import torch

    fsdp = launch.strategy == "fsdp"
    if P.dtype_name(model) != "float32" and bf16:  # accelerate upcasts the shards to fp32 master weights
        cast(model, torch.float32)
    model.train()  # the loaders return eval mode; HF checkpoints activations only in training mode
    if checkpointing:
        model.gradient_checkpointing_enable()
    if fsdp:
        acc = accelerate_config(launch, spec, port=29500)
        layer_cls = acc["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"]
        try:
            policy = P.wrap_policy(model, layer_cls, sim.stage)
        except FinemedError as err:  # reported; the later phases use the model's own unit to go on measuring
            sim.problems.append(str(err))
            layer_cls = ",".join(getattr(model, "_no_split_modules", None) or [])
            policy = P.wrap_policy(model, layer_cls, sim.stage)
        P.shard(model, policy, launch.world_size, bf16)
        wrapped = _local_bytes(model)
        sim.phases.append(Phase(phase="wrap", gpu_bytes=others_gpu + wrapped,
                                note=f"FSDP2 over {launch.world_size} ranks, units {layer_cls}"))
    else:
        wrapped = P.model_bytes(model)
        sim.phases.append(Phase(phase="wrap", gpu_bytes=others_gpu + wrapped, note="DDP: a full replica per rank"))
    step = P.step_peak(model, batch=batch, seq_len=seq_len, fsdp=fsdp, autocast_bf16=bf16 and not fsdp)
    terms = ", ".join(f"{k} {v / GIB:.1f}" for k, v in step.items() if k != "total" and v > GIB / 10)
    sim.phases.append(Phase(phase="step", gpu_bytes=others_gpu + step.get("total", 0),
                            note=f"batch {batch} x seq {seq_len}; GiB: {terms}"))
    return model


def _gather(sim: StageSim, model: Any, fsdp: bool, consolidate: bool) -> Any:
    """The stage's own gather of the trained model; returns rank 0's consolidated copy (or the model)."""
    if not fsdp:
        return model
    standin = SimpleNamespace(model=model, is_fsdp_enabled=True, is_world_process_zero=lambda: True,
                              accelerator=SimpleNamespace(unwrap_model=lambda m: m))
    if consolidate:
        plain = T.consolidated_model(standin)
        where = P.placement(plain) if hasattr(plain, P.PLACEMENT) else \
            ("gpu" if next(plain.parameters()).device.type == "cuda" else "host")
        setattr(plain, P.PLACEMENT, "cuda:0" if where == "gpu" else "cpu")
        b = P.model_bytes(plain)
        sim.phases.append(Phase(phase="gather", gpu_bytes=b if where == "gpu" else 0,
                                host_bytes=b if where == "host" else 0,
                                note=f"consolidated {P.dtype_name(plain)} copy on {where} (rank 0)"))
        return plain
    state = T.gather_full_state(standin)
    b = sum(t.numel() * t.element_size() for t in state.values())
    host = all(t.device.type == "cpu" for t in state.values())
    sim.phases.append(Phase(phase="gather", gpu_bytes=0 if host else b, host_bytes=b if host else 0,
                            note="full state dict (rank 0)"))
    sim.phases.append(Phase(phase="save", host_bytes=b, note="rank 0 writes the gathered state"))
    return model


def simulate_cpt(name: str, config: Any) -> StageSim:
    """CPT: the stage loads (its own ``run``, stopped at ``_check_model``); ``before`` bpb is scored where the
    stage scores it: on the loaded, unsharded model, or (where the stage keeps a local ``sharded`` true) through the
    FSDP-wrapped model at the start of training."""
    got = _run_until(cpt, "_check_model", cpt.run, config)
    model, rt = got["model"], got.get("rt")
    launch = config.launch
    sim = StageSim(stage=name, kind="train.cpt", model=config.model, world=launch.world_size,
                   strategy=launch.strategy, phases=[])
    P.measurable(model)
    gpu, host, notes = _resident({"model": model})
    sim.phases.append(Phase(phase="load", gpu_bytes=gpu, host_bytes=host, note="; ".join(notes)))
    sharded_before = bool(got.get("sharded")) or bool(getattr(rt, "sharded", False))
    if not sharded_before:
        ev = P.eval_peak(model, batch=config.eval_batch_size, seq_len=config.eval_max_length)
        where = P.placement(model)
        sim.phases.append(Phase(phase="eval", gpu_bytes=ev if where == "gpu" else 0,
                                host_bytes=ev if where == "host" else 0,
                                note=f"bpb before training, rank 0, unsharded model on {where}"))
        if where == "host" and launch.world_size > 1:
            sim.problems.append(f"{name}: rank 0 scores bpb before training on the host (CPU), unsharded")
    bf16 = (rt.compute if rt else config.dtype) == "bfloat16"
    wrapped = _train_phases(sim, model, launch=launch, spec=config.model, batch=config.batch_size,
                            seq_len=config.seq_len, bf16=bf16, checkpointing=config.gradient_checkpointing,
                            others_gpu=0)
    ev = P.eval_peak(wrapped, batch=config.eval_batch_size, seq_len=config.eval_max_length)
    sim.phases.append(Phase(phase="eval", gpu_bytes=ev, note="bpb through the trained (wrapped) model, every rank"
                            + ("; also before training" if sharded_before else "")))
    _gather(sim, model, launch.strategy == "fsdp", consolidate=False)
    return sim


def simulate_distill(name: str, cfg: Any) -> StageSim:
    got = _run_until(kd, "build_data", kd.run, cfg)
    teacher, student, ce = got["teacher"], got["student"], got.get("ce_student")
    rt = got.get("rt")
    launch = cfg.launch
    sim = StageSim(stage=name, kind="train.distill", model=cfg.student or cfg.teacher, world=launch.world_size,
                   strategy=launch.strategy, phases=[])
    for m in (teacher, student, ce):
        P.measurable(m)
    gpu, host, notes = _resident({"teacher": teacher, "student": student, "ce copy": ce})
    sim.phases.append(Phase(phase="load", gpu_bytes=gpu, host_bytes=host, note="; ".join(notes)))
    if P.placement(teacher) == "gpu" and P.dtype_name(teacher) == "float32" and launch.world_size > 1:
        sim.problems.append(f"{name}: the teacher (forward only) sits in float32 on every rank's GPU "
                            f"({P.model_bytes(teacher) / GIB:.1f} GiB each); bf16 halves it")
    others = sum(P.model_bytes(m) for m in (teacher, ce) if m is not None and P.placement(m) == "gpu")
    bf16 = (rt.compute if rt else cfg.dtype) == "bfloat16"
    _train_phases(sim, student, launch=launch, spec=cfg.student or cfg.teacher, batch=cfg.batch_size,
                  seq_len=cfg.seq_len, bf16=bf16, checkpointing=False, others_gpu=others)
    trained = _gather(sim, student, launch.strategy == "fsdp", consolidate=True)
    ert = got.get("ert")  # the stage's evaluation runtime, where it has one; it places the gathered copy
    if ert is not None:
        record_placement(trained)
        trained = T.for_eval(trained, ert)
    where = P.placement(trained)
    P.measurable(trained)
    ev = P.eval_peak(trained, batch=cfg.batch_size * 2, seq_len=cfg.seq_len * 2)
    sim.phases.append(Phase(phase="eval", gpu_bytes=others + ev if where == "gpu" else others,
                            host_bytes=ev if where == "host" else 0,
                            note=f"rank 0: bpb and QA of the trained student on {where}"))
    if where == "host" and launch.world_size > 1:
        sim.problems.append(f"{name}: rank 0 evaluates the trained student (bpb, QA) on the host (CPU) while "
                            f"{launch.world_size - 1} GPUs wait")
    sim.phases.append(Phase(phase="save", gpu_bytes=0, host_bytes=P.model_bytes(trained) if where == "host" else 0,
                            note=f"student/ in {P.dtype_name(trained)}"))
    return sim


SIMULATORS = {"train.cpt": simulate_cpt, "train.distill": simulate_distill}

"""Multi-process training stages: ``finemed run`` starts ``accelerate launch`` itself.

A training stage's config has ``launch: {processes, machines, strategy, mixed_precision}``. When
``processes * machines > 1`` and this process is not already one of a launched job, the stage calls
:func:`launch_stage`: it writes the resolved config (``launch/config.json``) and a generated accelerate config
(``launch/accelerate.yaml``) into the run dir and runs ``accelerate launch`` over ``python -m finemed.core.launch``,
which runs the same stage function with the same config in every process. Rank 0 writes ``launch/result.json``
(or ``launch/error.json`` for a one-line :class:`FinemedError`); the launcher reads it back.

- CPU: the processes talk over gloo (torchrun spawns them; accelerate picks gloo without CUDA).
- Multi-node: ``machine_rank`` comes from ``FINEMED_MACHINE_RANK``, ``SLURM_NODEID`` or ``NODE_RANK``;
  ``main_process_ip`` from ``MASTER_ADDR``; the port from ``MASTER_PORT`` (a free port on one machine).
- Every worker dies with its parent (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the launcher never leaves
  orphans that keep writing checkpoints.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from finemed.core import stages
from finemed.core.artifacts import atomic_write_json, atomic_write_text, read_json, to_jsonable
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger, setup_logging
from finemed.core.procs import die_with_parent, free_port
from finemed.core.runtime import cuda_available
from finemed.models.arch import config_dict

log = get_logger("finemed.core.launch")  # also when run as __main__ (the worker)
LAUNCHED_ENV = "FINEMED_LAUNCHED"
LAUNCHER_PID_ENV = "FINEMED_LAUNCHER_PID"


class LaunchConfig(StageConfig):
    """How many processes train: ``processes`` per machine on ``machines`` machines."""

    processes: int = Field(default=1, ge=1)
    machines: int = Field(default=1, ge=1)
    strategy: Literal["ddp", "fsdp"] = "ddp"
    mixed_precision: Literal["auto", "bf16", "no"] = "auto"  # auto: the stage's dtype decides
    layer_cls: str | None = None  # FSDP wrap unit; default: the model class's own ``_no_split_modules``
    # seconds any collective may wait (init_process_group and the Trainer's ddp_timeout): rank 0 alone builds the
    # KD logit cache or tokenises while the others wait at a barrier; NCCL's default watchdog kills them at 10 min
    timeout_s: int = Field(default=7200, ge=60)

    @property
    def world_size(self) -> int:
        return self.processes * self.machines


def in_launched_process() -> bool:
    """True inside a process that ``accelerate launch``/torchrun started (ours or the user's own)."""
    return os.environ.get(LAUNCHED_ENV) == "1" or int(os.environ.get("WORLD_SIZE", "1")) > 1


def needs_launch(launch: LaunchConfig | None) -> bool:
    return launch is not None and launch.world_size > 1 and not in_launched_process()


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def machine_rank() -> int:
    for key in ("FINEMED_MACHINE_RANK", "SLURM_NODEID", "NODE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def decoder_layer_class(model: str) -> str:
    """The FSDP wrap unit of ``model``: the class names transformers itself keeps whole (``_no_split_modules`` of
    the model class its config names: ``Qwen2DecoderLayer``, ``GPTNeoXLayer``, ...), comma-separated.

    Never derived from the architecture name: transformers 5.24 builds ``GPTNeoXLayer`` for Pythia, and accelerate
    raises at prepare on a class name the model does not contain."""
    import transformers

    cfg = config_dict(model)
    classes = []
    for arch in cfg.get("architectures") or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            classes.append(cls)
    if not classes:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        hf = AutoConfig.for_model(cfg.get("model_type", "llama"))
        classes = [MODEL_FOR_CAUSAL_LM_MAPPING[type(hf)]]
    names = list(dict.fromkeys(n for cls in classes for n in (getattr(cls, "_no_split_modules", None) or [])))
    if not names:
        raise FinemedError(f"model {model!r}: its class {classes[0].__name__} names no _no_split_modules; set "
                           f"launch.layer_cls to its decoder layer class for FSDP")
    return ",".join(names)


def accelerate_config(launch: LaunchConfig, model: str | None = None, *, port: int | None = None,
                      ram_efficient_loading: bool = True, activation_checkpointing: bool = False) -> dict[str, Any]:
    """The accelerate config of a launch: DDP (``MULTI_GPU``; gloo on CPU) or FSDP2 with sharded checkpoints.

    Under FSDP, ``activation_checkpointing`` is FSDP's own (per wrapped layer, inside its all-gather); the stage
    then leaves the Trainer's flag off (:func:`fsdp_owns_checkpointing`): both at once re-gather every layer."""
    multi = launch.machines > 1
    if multi and not os.environ.get("MASTER_ADDR"):
        raise FinemedError(f"launch: machines={launch.machines} needs MASTER_ADDR (rank 0's host) and "
                           f"FINEMED_MACHINE_RANK (or SLURM_NODEID) in the environment of every machine")
    port = int(os.environ["MASTER_PORT"]) if os.environ.get("MASTER_PORT") else (port or free_port())
    acc: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "debug": False,
        "distributed_type": "FSDP" if launch.strategy == "fsdp" else "MULTI_GPU",
        "mixed_precision": "no" if launch.mixed_precision == "auto" else launch.mixed_precision,
        "num_machines": launch.machines, "num_processes": launch.world_size, "machine_rank": machine_rank(),
        "main_process_ip": os.environ.get("MASTER_ADDR", "127.0.0.1"), "main_process_port": port,
        "rdzv_backend": "static", "same_network": True, "use_cpu": False, "downcast_bf16": "no",
        "gpu_ids": "all", "main_training_function": "main"}
    if launch.strategy == "fsdp":
        layer_cls = launch.layer_cls or (decoder_layer_class(model) if model else "LlamaDecoderLayer")
        acc["fsdp_config"] = {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": layer_cls, "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT", "fsdp_cpu_ram_efficient_loading": ram_efficient_loading,
            "fsdp_sync_module_states": True, "fsdp_offload_params": False,
            "fsdp_activation_checkpointing": activation_checkpointing}
    return acc


def fsdp_owns_checkpointing(launch: LaunchConfig | None) -> bool:
    """True where FSDP does activation checkpointing (a multi-process FSDP launch), so the Trainer must not."""
    return launch is not None and launch.strategy == "fsdp" and launch.world_size > 1


def write_accelerate_config(path: Path | str, launch: LaunchConfig, model: str | None = None, **kw) -> Path:
    atomic_write_text(Path(path), yaml.safe_dump(accelerate_config(launch, model, **kw), sort_keys=False))
    return Path(path)


def return_freed_host_memory() -> None:
    """glibc: allocations of 128 KiB and more get their own mapping, unmapped when freed; at most two arenas.

    Why: on CPU every training step frees and reallocates hundreds of MiB of activations, gradients and (under
    FSDP) all-gather/reduce-scatter buffers, partly from gloo's threads. glibc's default raises its mmap threshold
    after the first large free (up to 32 MiB), so those blocks land in per-thread heap arenas that it rarely
    returns. Measured on SmolLM2-135M (fp32, 3 steps, seq 128, global batch 4, same losses): the 2-rank FSDP peaks
    fell from 3405 + 3110 to 1966 + 1961 MiB, the 1-process run's from 3443 to 3028 MiB (with a 1 MiB threshold:
    2448 + 2500 and 3073). The cost is a page fault per large allocation, small next to a training step.
    Only launched workers call it: with the 128 KiB threshold every large CPU tensor is a fresh mapping (page
    faults, zeroing), and the 1-process quickstart's CPU training ran no faster on a quiet box (CPT 444.8 s) than it
    had at load 20 without it (497.8 s). On a GPU the host allocations it affects are few. No-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold, m_arena_max = -3, -8  # malloc.h
    libc.mallopt(m_mmap_threshold, 128 << 10)
    libc.mallopt(m_arena_max, 2)


def init_distributed(timeout_s: int | None = None) -> None:
    """Join the process group before the model loads, so that FSDP's RAM-efficient loading applies
    (ranks other than 0 build the model on the meta device; rank 0's weights are broadcast when sharding).
    ``timeout_s`` (``launch.timeout_s``) goes to ``init_process_group``: else NCCL's 10-minute default applies."""
    if world_size() > 1:
        from datetime import timedelta

        from accelerate import PartialState

        kw = {"timeout": timedelta(seconds=timeout_s)} if timeout_s else {}
        PartialState(cpu=not cuda_available(), **kw)


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first, then the others (who then find its outputs, e.g. a finished cache)."""
    if world_size() <= 1:
        yield
        return
    from accelerate import PartialState

    with PartialState().main_process_first():
        yield


def enable_cpu_fsdp(accelerator) -> bool:
    """FSDP on CPU (gloo): accelerate only turns FSDP on for GPU-like backends; under a launch that asks for FSDP
    (``ACCELERATE_USE_FSDP``) on CPU, switch the accelerator's state to FSDP with the plugin the env describes."""
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or \
            state.distributed_type != DistributedType.MULTI_CPU:
        return False
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin()
    return True


FAULT_ENV = "FINEMED_FAULT_KILL_AT_STEP"  # tests: rank 0 kill -9s the launcher after this training step


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def fault_callbacks() -> list:
    """With ``FINEMED_FAULT_KILL_AT_STEP=N`` in a launched job: a Trainer callback by which rank 0 SIGKILLs the
    launcher after step N (the workers follow it: they die with their parent). Used to test exact resume."""
    at, pid = os.environ.get(FAULT_ENV, ""), os.environ.get(LAUNCHER_PID_ENV, "")
    if not (at.isdigit() and pid.isdigit()) or rank() != 0:
        return []
    from transformers import TrainerCallback

    class KillLauncher(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == int(at):  # like a node failure: the launcher and every worker at once
                workers = [int(d) for d in os.listdir("/proc") if d.isdigit() and _ppid(int(d)) == int(pid)]
                os.kill(int(pid), signal.SIGKILL)
                for w in sorted(workers, key=lambda w: w == os.getpid()):
                    os.kill(w, signal.SIGKILL)

    return [KillLauncher()]


def launch_stage(kind: str, config: StageConfig, run_dir: Path | str, launch: LaunchConfig,
                 model: str | None = None, **acc_kw: Any) -> dict[str, Any]:
    """Run stage ``kind`` with ``config`` in ``launch.world_size`` processes; return rank 0's result dict."""
    run_dir = Path(run_dir)
    ldir = run_dir / "launch"
    ldir.mkdir(parents=True, exist_ok=True)
    for name in ("result.json", "error.json"):
        (ldir / name).unlink(missing_ok=True)
    atomic_write_json(ldir / "config.json", config)
    acc = write_accelerate_config(ldir / "accelerate.yaml", launch, model, **acc_kw)
    # --machine_rank on the command line: on several machines the shared accelerate.yaml holds the last writer's rank
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(acc),
           "--machine_rank", str(machine_rank()), "-m", "finemed.core.launch",
           kind, str(ldir / "config.json"), str(run_dir)]
    env = dict(os.environ, **{LAUNCHED_ENV: "1", LAUNCHER_PID_ENV: str(os.getpid())})
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // launch.processes)))
    log.info("%s: launching %d processes (%s, %d machine(s)): %s", kind, launch.world_size, launch.strategy,
             launch.machines, " ".join(cmd[2:]))
    proc = subprocess.run(cmd, env=env, preexec_fn=die_with_parent)
    if (ldir / "error.json").is_file():
        raise FinemedError(read_json(ldir / "error.json")["error"])
    if proc.returncode != 0:
        raise FinemedError(f"{kind}: the launched processes failed (exit {proc.returncode}); see the log above. "
                           f"Rerun to resume from the last complete checkpoint")
    if not (ldir / "result.json").is_file():
        raise FinemedError(f"{kind}: no {ldir / 'result.json'} from rank 0 (machine {machine_rank()}); on several "
                           f"machines the run dir must be on a filesystem they all share")
    return read_json(ldir / "result.json")


def worker(kind: str, config_path: str, run_dir: str) -> int:
    """One launched process: run stage ``kind``; rank 0 writes ``launch/result.json``."""

    die_with_parent()
    return_freed_host_memory()
    sdef = stages.get(kind)
    cfg = sdef.config.model_validate(json.loads(Path(config_path).read_text(encoding="utf-8")))
    launch = getattr(cfg, "launch", None)
    init_distributed(launch.timeout_s if isinstance(launch, LaunchConfig) else None)
    ldir = Path(run_dir) / "launch"
    try:
        result = sdef.fn(cfg, Path(run_dir))
    except FinemedError as err:
        if rank() == 0:
            atomic_write_json(ldir / "error.json", {"error": str(err)})
        log.error("%s", err)
        return 2
    if rank() == 0:
        atomic_write_json(ldir / "result.json", to_jsonable(result))
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()  # every machine's launcher may read rank 0's result once its processes exit
    import resource

    log.info("rank %d: peak RSS %.0f MiB", rank(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return 0


if __name__ == "__main__":

    setup_logging()
    sys.exit(worker(*sys.argv[1:4]))

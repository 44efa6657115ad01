"""Run the pipeline's stages on datatrove's executors: local (default), Ray, or Slurm (emit only).

Every stage gets its own ``logging_dir`` under ``DIR/logs/<stage>``, where datatrove keeps one
completion marker per task, so a rerun skips finished tasks (``skip_completed``). Slurm: the sbatch
scripts and pickled executors are written under ``DIR/slurm/<stage>/`` plus ``submit.sh`` that chains
them with ``--dependency=afterok``, ending with a ``finemed corpus finalize DIR`` job that writes ``stats.json``
and ``funnel.png`` once every stage is done; nothing is submitted unless the user runs ``submit.sh``. Ray
attaches to a running cluster (``ray.address: auto`` or ``$RAY_ADDRESS``) or starts a local one.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from finemed.artifacts import atomic_write_bytes, atomic_write_text
from finemed.config import StageConfig
from finemed.logs import get_logger

log = get_logger(__name__)


class SlurmConfig(StageConfig):
    partition: str = "cpu"
    time: str = "04:00:00"
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: int = Field(2, ge=1)
    venv_path: str | None = None
    qos: str = "normal"
    sbatch_args: dict[str, str] = Field(default_factory=dict)


class RayConfig(StageConfig):
    address: str | None = None  # "auto", "ray://host:10001", host:port; None: $RAY_ADDRESS, else a local Ray
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(1, gt=0)
    gpus_per_task: int = Field(0, ge=0)
    local_cpus: int | None = Field(None, ge=1)  # CPUs of a local Ray started when no cluster is attached; None: workers


class ExecutorConfig(StageConfig):
    kind: Literal["local", "ray", "slurm"] = "local"
    workers: int = Field(2, ge=1)
    tasks: int | None = Field(None, ge=1)  # default: one task per input file
    ray: RayConfig = Field(default_factory=RayConfig)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)


def _run_stages(executor_cls, stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int,
                **executor_kwargs) -> dict[str, float]:
    """Each stage on ``executor_cls`` with its own logging dir (completion markers); seconds per stage."""
    seconds = {}
    for name, steps, tasks in stages:
        n = tasks or cfg.tasks or default_tasks
        t = time.perf_counter()
        executor_cls(steps, tasks=n, workers=min(cfg.workers, n), logging_dir=str(run_dir / "logs" / name),
                     skip_completed=True, **executor_kwargs).run()
        seconds[name] = round(time.perf_counter() - t, 2)
    return seconds


def run_local(stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int) -> dict[str, float]:
    from datatrove.executor import LocalPipelineExecutor

    return _run_stages(LocalPipelineExecutor, stages, run_dir, cfg, default_tasks)


def ray_init(cfg: ExecutorConfig) -> str:
    """Attach to ``ray.address`` or ``$RAY_ADDRESS`` (a running cluster), else start a local Ray; say which."""
    import ray

    address = cfg.ray.address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return "already initialised"
    if address:  # a cluster's resources are its own: no num_cpus here (ray.init raises if given)
        ray.init(address=address, log_to_driver=False)
        return f"attached to {address}"
    ray.init(num_cpus=max(1, cfg.ray.local_cpus or cfg.workers), include_dashboard=False, log_to_driver=False)
    return "local"


def run_ray(stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int) -> dict[str, float]:
    from datatrove.executor.ray import RayPipelineExecutor

    log.info("ray: %s", ray_init(cfg))
    return _run_stages(RayPipelineExecutor, stages, run_dir, cfg, default_tasks, cpus_per_task=cfg.ray.cpus_per_task,
                       mem_per_cpu_gb=cfg.ray.mem_per_cpu_gb, gpus_per_task=cfg.ray.gpus_per_task)


def emit_slurm(stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int) -> Path:
    """Write one sbatch script + pickled executor per stage and a ``submit.sh`` chaining them."""
    import dill
    from datatrove.executor.slurm import SlurmPipelineExecutor

    out = run_dir / "slurm"
    lines = ["#!/bin/bash", "# submit the corpus stages in order; each waits for the previous (afterok)",
             "set -euo pipefail", "prev=''"]
    for name, steps, tasks in stages:
        n = tasks or cfg.tasks or default_tasks
        ex = SlurmPipelineExecutor(steps, tasks=n, time=cfg.slurm.time, partition=cfg.slurm.partition,
                                   cpus_per_task=cfg.slurm.cpus_per_task, mem_per_cpu_gb=cfg.slurm.mem_per_cpu_gb,
                                   workers=cfg.workers, job_name=f"finemed-{name}", qos=cfg.slurm.qos,
                                   venv_path=cfg.slurm.venv_path, sbatch_args=dict(cfg.slurm.sbatch_args) or None,
                                   logging_dir=str(run_dir / "logs" / name),
                                   slurm_logs_folder=str(out / name / "slurm_logs"))
        stage_dir = out / name
        stage_dir.mkdir(parents=True, exist_ok=True)
        pik = stage_dir / "executor.pik"
        atomic_write_bytes(pik, dill.dumps(ex))
        script = ex.get_launch_file_contents(ex.get_sbatch_args(min(n, ex.max_array_size)),
                                             f"srun -l launch_pickled_pipeline {shlex.quote(str(pik))}")
        atomic_write_text(stage_dir / "launch_script.slurm", script)
        lines.append("dep=${prev:+--dependency=afterok:$prev}")
        lines.append(f"prev=$(sbatch --parsable $dep {shlex.quote(str(stage_dir / 'launch_script.slurm'))})")
        lines.append(f"echo '{name}: job '$prev")
    lines += ["# once every stage is done: merge the per-task stats, write stats.json and funnel.png",
              f"final=$(sbatch --parsable --dependency=afterok:$prev --partition={shlex.quote(cfg.slurm.partition)} "
              f"--time=01:00:00 --job-name=finemed-finalize --output={shlex.quote(str(out / 'finalize.out'))} "
              f"--wrap {shlex.quote(finalize_command(run_dir, cfg))})",
              "echo 'finalize: job '$final"]
    atomic_write_text(out / "submit.sh", "\n".join(lines) + "\n")
    (out / "submit.sh").chmod(0o755)
    return out


def finalize_command(run_dir: Path, cfg: ExecutorConfig) -> str:
    """The shell line that runs ``finemed corpus finalize DIR`` on a Slurm node (the venv's python if set)."""
    python = str(Path(cfg.slurm.venv_path) / "bin" / "python") if cfg.slurm.venv_path else sys.executable
    return f"{shlex.quote(python)} -m finemed.cli corpus finalize {shlex.quote(str(run_dir))}"


def execute(stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int):
    if cfg.kind == "local":
        return run_local(stages, run_dir, cfg, default_tasks)
    if cfg.kind == "ray":
        return run_ray(stages, run_dir, cfg, default_tasks)
    return emit_slurm(stages, run_dir, cfg, default_tasks)

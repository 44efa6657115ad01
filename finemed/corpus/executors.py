"""Run the pipeline's stages on datatrove's executors: local (default), Ray, or Slurm (emit only).

Every stage gets its own ``logging_dir`` under ``DIR/logs/<stage>``, where datatrove keeps one
completion marker per task, so a rerun skips finished tasks (``skip_completed``). Slurm: the sbatch
scripts and pickled executors are written under ``DIR/slurm/<stage>/`` plus ``submit.sh`` that chains
them with ``--dependency=afterok``; nothing is submitted unless the user runs ``submit.sh``.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from finemed.artifacts import atomic_write_bytes, atomic_write_text
from finemed.config import StageConfig


class SlurmConfig(StageConfig):
    partition: str = "cpu"
    time: str = "04:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2
    venv_path: str | None = None
    qos: str = "normal"
    sbatch_args: dict[str, str] = Field(default_factory=dict)


class ExecutorConfig(StageConfig):
    kind: Literal["local", "ray", "slurm"] = "local"
    workers: int = 2
    tasks: int | None = None  # default: one task per input file
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


def run_ray(stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int) -> dict[str, float]:
    import ray
    from datatrove.executor.ray import RayPipelineExecutor

    if not ray.is_initialized():
        ray.init(num_cpus=max(1, cfg.workers), include_dashboard=False, log_to_driver=False)
    return _run_stages(RayPipelineExecutor, stages, run_dir, cfg, default_tasks, cpus_per_task=1, mem_per_cpu_gb=1)


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
    atomic_write_text(out / "submit.sh", "\n".join(lines) + "\n")
    (out / "submit.sh").chmod(0o755)
    return out


def execute(stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int):
    if cfg.kind == "local":
        return run_local(stages, run_dir, cfg, default_tasks)
    if cfg.kind == "ray":
        return run_ray(stages, run_dir, cfg, default_tasks)
    return emit_slurm(stages, run_dir, cfg, default_tasks)

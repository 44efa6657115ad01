"""Run the pipeline's stages on datatrove's executors: local (default), Ray, or Slurm.

Every stage gets its own ``logging_dir`` under ``DIR/logs/<stage>``, where datatrove keeps one
completion marker per task, so a rerun skips finished tasks (``skip_completed``). Slurm goes through
datatrove's own path: one :class:`~datatrove.executor.slurm.SlurmPipelineExecutor` per stage, chained with
``depends=``, submitted by its ``launch_job`` (it writes ``executor.pik``, ``ranks_to_run.json`` and
``launch_script.slurm`` in the stage's logging dir and submits one array per ``max_array_size`` tasks with
``RUN_OFFSET`` set), then a ``finemed corpus finalize DIR`` job that waits for the last stage
(``--dependency=afterok``) and writes ``stats.json`` and ``funnel.png``. The job ids land in
``DIR/slurm/jobs.json``. Ray attaches to a running cluster (``ray.address: auto`` or ``$RAY_ADDRESS``) or starts a
local one. GPUs (``ray.gpus_per_task``, ``slurm.gpus_per_task``) go to the tasks of the ``filter`` stage only,
where the domain classifier scores every doc; the MinHash stages ask for none.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from finemed.core.artifacts import atomic_write_json, atomic_write_text
from finemed.core.config import StageConfig
from finemed.core.logs import get_logger

log = get_logger(__name__)

GPU_STAGE = "filter"  # the stage whose steps score docs with the domain classifier


class SlurmConfig(StageConfig):
    partition: str = "cpu"
    time: str = "04:00:00"
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: int = Field(2, ge=1)
    gpus_per_task: int = Field(0, ge=0)  # for the filter stage's tasks (the domain classifier); others get 0
    venv_path: str | None = None  # a venv dir or its bin/activate: each job sources it (datatrove's venv_path)
    qos: str = "normal"
    max_array_size: int = Field(1001, ge=1)  # the cluster's MaxArraySize: more tasks go into several arrays
    sbatch_args: dict[str, str] = Field(default_factory=dict)


class RayConfig(StageConfig):
    address: str | None = None  # "auto", "ray://host:10001", host:port; None: $RAY_ADDRESS, else a local Ray
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(1, gt=0)
    gpus_per_task: float = Field(0, ge=0)  # for the filter stage's tasks (the domain classifier); others get 0
    local_cpus: int | None = Field(None, ge=1)  # CPUs of a local Ray started when no cluster is attached; None: workers


class ExecutorConfig(StageConfig):
    kind: Literal["local", "ray", "slurm"] = "local"
    workers: int = Field(2, ge=1)
    tasks: int | None = Field(None, ge=1)  # default: one task per input file
    ray: RayConfig = Field(default_factory=RayConfig)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)

    def classifier_gpus(self) -> float | None:
        """GPUs each task of the classifier's stage asks for; None for the local executor (it uses what it sees)."""
        return {"ray": self.ray.gpus_per_task, "slurm": self.slurm.gpus_per_task}.get(self.kind)


def _run_stages(executor_cls, stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int,
                per_stage=lambda name: {}, **executor_kwargs) -> dict[str, float]:
    """Each stage on ``executor_cls`` with its own logging dir (completion markers); seconds per stage."""
    seconds = {}
    for name, steps, tasks in stages:
        n = tasks or cfg.tasks or default_tasks
        t = time.perf_counter()
        executor_cls(steps, tasks=n, workers=min(cfg.workers, n), logging_dir=str(run_dir / "logs" / name),
                     skip_completed=True, **executor_kwargs, **per_stage(name)).run()
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
                       mem_per_cpu_gb=cfg.ray.mem_per_cpu_gb,
                       per_stage=lambda name: {"gpus_per_task": cfg.ray.gpus_per_task if name == GPU_STAGE else 0})


def _activate(venv_path: str | None) -> str | None:
    """datatrove runs ``source VENV_PATH``: accept a venv dir too (its ``bin/activate``)."""
    if not venv_path or venv_path.endswith("activate"):
        return venv_path
    return str(Path(venv_path) / "bin" / "activate")


def submit_slurm(stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int) -> Path:
    """Submit every stage through datatrove's ``launch_job`` (chained ``depends=``), then the finalize job.

    Returns ``DIR/slurm``, which holds ``jobs.json`` (stage -> last array job id, -1 when every task was already
    done) and ``finalize.slurm``; each stage's launch script, pickled executor and ``ranks_to_run.json`` are in
    ``DIR/logs/<stage>/``.
    """
    from datatrove.executor.slurm import SlurmPipelineExecutor, launch_slurm_job

    out = run_dir / "slurm"
    s = cfg.slurm
    executors: list[tuple[str, SlurmPipelineExecutor]] = []
    for name, steps, tasks in stages:
        n = tasks or cfg.tasks or default_tasks
        prev = executors[-1][1] if executors else None
        executors.append((name, SlurmPipelineExecutor(
            steps, tasks=n, time=s.time, partition=s.partition, cpus_per_task=s.cpus_per_task,
            mem_per_cpu_gb=s.mem_per_cpu_gb, gpus_per_task=s.gpus_per_task if name == GPU_STAGE else 0,
            workers=cfg.workers, job_name=f"finemed-{name}", qos=s.qos, venv_path=_activate(s.venv_path),
            sbatch_args=dict(s.sbatch_args) or None, max_array_size=s.max_array_size, depends=prev,
            logging_dir=str(run_dir / "logs" / name), slurm_logs_folder=str(out / name / "slurm_logs"))))
    last = executors[-1][1]
    last.launch_job()  # launches its dependencies first (datatrove), each with ranks_to_run.json and RUN_OFFSETs
    jobs = {name: str(ex.job_id) for name, ex in executors}
    finalize_args = {"partition": s.partition, "time": "01:00:00", "job-name": "finemed-finalize",
                     "output": str(out / "finalize.out"), "cpus-per-task": 1, "qos": s.qos}
    script = last.get_launch_file_contents(finalize_args, finalize_command(run_dir, cfg))
    atomic_write_text(out / "finalize.slurm", script)
    dep = [f"--dependency=afterok:{last.job_id}"] if str(last.job_id) != "-1" else []
    jobs["finalize"] = launch_slurm_job(script, last.job_id_retriever, *dep)
    atomic_write_json(out / "jobs.json", jobs)
    log.info("slurm jobs submitted: %s", jobs)
    return out


def finalize_command(run_dir: Path, cfg: ExecutorConfig) -> str:
    """The shell line that runs ``finemed corpus finalize DIR`` on a Slurm node (the sourced venv's python if set)."""
    python = "python" if cfg.slurm.venv_path else sys.executable
    return f"{shlex.quote(python)} -m finemed.cli corpus finalize {shlex.quote(str(run_dir))}"


def execute(stages, run_dir: Path, cfg: ExecutorConfig, default_tasks: int):
    if cfg.kind == "local":
        return run_local(stages, run_dir, cfg, default_tasks)
    if cfg.kind == "ray":
        return run_ray(stages, run_dir, cfg, default_tasks)
    return submit_slurm(stages, run_dir, cfg, default_tasks)

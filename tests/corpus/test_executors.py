"""Slurm: datatrove's launch_job runs through sbatch/srun stand-ins (every array task, with Slurm's variables) and
matches a local build; finalize rebuilds stats.json from the task logs. Ray: a build attached to a head node
started by the test matches local; the classifier's stage asks for the GPUs the plan assumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from finemed.core.procs import free_port
from finemed.corpus.build import CorpusBuildConfig, finalize, run

sys.path.insert(0, str(Path(__file__).parent))
from slurm_standins import install, submissions  # noqa: E402


def _ids(run_dir: Path) -> set[str]:
    return {i for f in (run_dir / "output").glob("*.parquet")
            for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}


def test_slurm_submits_through_datatrove_with_ranks_file_and_array_offsets(small_dev, small_clf, tmp_path,
                                                                          monkeypatch):
    """Fast: what launch_job submits (sbatch stand-in records only): 4 tasks in arrays of 3 -> RUN_OFFSET 0 and 1."""
    state = tmp_path / "slurm-state"
    for k, v in install(tmp_path / "bin", state, max_array=3, run=False).items():
        monkeypatch.setenv(k, v)
    run_dir = tmp_path / "run"
    res = run(CorpusBuildConfig(input=str(small_dev), classifier=str(small_clf), tokenizer=None, executor={
        "kind": "slurm", "slurm": {"partition": "cpu-long", "max_array_size": 3, "gpus_per_task": 1}}), run_dir)
    arrays = [(s["name"], s["array"], s["run_offset"]) for s in submissions(state) if s["run_offset"] is not None]
    assert arrays == [("finemed-filter", "0-2%2", "0"), ("finemed-filter", "0-2%2", "1"),
                      *[("finemed-minhash_buckets", "0-2%2", str(k)) for k in range(5)],  # 14 buckets
                      ("finemed-minhash_cluster", "0-0%2", "0"),
                      ("finemed-final", "0-2%2", "0"), ("finemed-final", "0-2%2", "1")]
    for name, n in (("filter", 4), ("minhash_buckets", 14), ("minhash_cluster", 1), ("final", 4)):
        assert json.loads((run_dir / "logs" / name / "ranks_to_run.json").read_text()) == list(range(n))
        script = (run_dir / "logs" / name / "launch_script.slurm").read_text()
        assert "#SBATCH --partition=cpu-long" in script and "launch_pickled_pipeline" in script
        assert ("#SBATCH --gpus=1" in script) == (name == "filter")
    jobs = json.loads((Path(res.slurm) / "jobs.json").read_text())
    assert submissions(state)[-1]["deps"] == [f"afterok:{jobs['final']}"] and not (run_dir / "output").exists()


@pytest.mark.slow  # ~16 task processes: ~1 min alone; smoke: the one Slurm rehearsal make test runs
@pytest.mark.smoke
def test_slurm_rehearsal_runs_every_array_task_and_matches_local(small_dev, small_clf, tmp_path, monkeypatch):
    """datatrove's launch_job through sbatch/srun stand-ins; max_array_size 3 < 4 input files: two arrays, offsets."""
    state = tmp_path / "slurm-state"
    for k, v in install(tmp_path / "bin", state, max_array=3).items():
        monkeypatch.setenv(k, v)
    common = dict(input=str(small_dev), classifier=str(small_clf), tokenizer=None,  # light steps: ~16 task processes
                  pipeline={"steps": ["length", "langid", "domain", "minhash"], "dedup": {"num_buckets": 2}})
    run(CorpusBuildConfig(**common, executor={"workers": 2}), tmp_path / "local")
    slurm_dir = tmp_path / "slurm"
    res = run(CorpusBuildConfig(**common, executor={
        "kind": "slurm", "workers": 2, "slurm": {"partition": "cpu-long", "time": "02:00:00", "max_array_size": 3}}),
        slurm_dir)
    subs = submissions(state)
    arrays = [(s["name"], s["array"], s["run_offset"]) for s in subs if s["array"]]
    assert arrays[:2] == [("finemed-filter", "0-2%2", "0"), ("finemed-filter", "0-2%2", "1")]
    assert ("finemed-minhash_buckets", "0-1%2", "0") in arrays and all(s["ok"] for s in subs)
    assert sum(1 for s in subs if s["name"] == "finemed-final" and s["run_offset"]) == 2  # 4 tasks, arrays of 3
    assert json.loads((slurm_dir / "logs" / "filter" / "ranks_to_run.json").read_text()) == [0, 1, 2, 3]
    for name in ("filter", "minhash_buckets", "minhash_cluster", "final"):
        script = (slurm_dir / "logs" / name / "launch_script.slurm").read_text()
        assert "#SBATCH --partition=cpu-long" in script and "#SBATCH --time=02:00:00" in script
        assert len(list((slurm_dir / "logs" / name / "completions").iterdir())) >= 1
    assert len(list((slurm_dir / "logs" / "filter" / "completions").iterdir())) == 4  # task 3 ran via RUN_OFFSET=1
    jobs = json.loads((Path(res.slurm) / "jobs.json").read_text())
    assert subs[-1]["job"] == jobs["finalize"] and subs[-1]["deps"] == [f"afterok:{jobs['final']}"]
    assert _ids(slurm_dir) == _ids(tmp_path / "local") and len(_ids(slurm_dir)) > 50
    local_stats = json.loads((tmp_path / "local" / "stats.json").read_text())
    slurm_stats = json.loads((slurm_dir / "stats.json").read_text())  # written by the finalize job
    assert slurm_stats["funnel"] == local_stats["funnel"]


def test_ray_and_slurm_ask_gpus_for_the_classifier_stage_only(monkeypatch, tmp_path):
    """The filter stage (domain classifier) gets ``gpus_per_task``; the MinHash stages get none."""
    import datatrove.executor.ray as dray

    from finemed.corpus import executors

    seen = {}

    class Recorder:
        def __init__(self, steps, **kw):
            seen[Path(kw["logging_dir"]).name] = kw["gpus_per_task"]

        def run(self):
            return None

    monkeypatch.setattr(dray, "RayPipelineExecutor", Recorder)
    monkeypatch.setattr(executors, "ray_init", lambda cfg: "test")
    cfg = executors.ExecutorConfig(kind="ray", ray={"gpus_per_task": 0.5})
    stages = [("filter", [], None), ("minhash_buckets", [], 2), ("minhash_cluster", [], 1), ("final", [], None)]
    executors.run_ray(stages, tmp_path, cfg, 4)
    assert seen == {"filter": 0.5, "minhash_buckets": 0, "minhash_cluster": 0, "final": 0}
    assert cfg.classifier_gpus() == 0.5


def test_finalize_reproduces_stats_from_task_logs(small_dev, small_clf, tmp_path):
    run_dir = tmp_path / "run"
    run(CorpusBuildConfig(input=str(small_dev), classifier=str(small_clf), tokenizer=None,
                          executor={"workers": 1, "tasks": 2}), run_dir)
    before = json.loads((run_dir / "stats.json").read_text())
    for f in [run_dir / "stats.json", run_dir / "funnel.png", *run_dir.glob("logs/*/stats.json")]:
        f.unlink()  # what a Slurm run has when its last job ends: per-task stats only
    after = finalize(run_dir)
    for key in ("input_docs", "blocks", "totals", "funnel", "survival", "dropped_samples", "domain_threshold"):
        assert after[key] == before[key], key
    assert (run_dir / "funnel.png").stat().st_size > 1000
    from typer.testing import CliRunner

    from finemed.corpus.cli import app

    res = CliRunner().invoke(app, ["finalize", str(run_dir)])
    assert res.exit_code == 0 and "written:" in res.output
    assert json.loads((run_dir / "stats.json").read_text())["blocks"] == before["blocks"]



@pytest.fixture()
def ray_head():
    """``ray start --head --block`` on 127.0.0.1 in its own process group; stopped (that node only) after."""
    pytest.importorskip("ray")
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's unix sockets live below it
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    proc = subprocess.Popen([ray_bin, "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats",
                             "--temp-dir", str(temp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "ray start exited"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        ray.shutdown()
        proc.send_signal(signal.SIGTERM)  # `ray stop` for this head only: --block stops its node on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.smoke  # ~3.5 min on a shared 2-core box (Ray workers start per task); `make test` still runs it
def test_ray_attaches_to_running_cluster(ray_head, small_dev, small_clf, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_head)  # ray.init(num_cpus=...) raised here before
    ids = {}
    for kind in ("local", "ray"):
        run(CorpusBuildConfig(input=str(small_dev), classifier=str(small_clf), tokenizer=None,
                              pipeline={"dedup": {"num_buckets": 2}},  # 2 bucket tasks, not 14: fewer Ray tasks
                              executor={"kind": kind, "workers": 2, "ray": {"mem_per_cpu_gb": 0.25}}), tmp_path / kind)
        ids[kind] = _ids(tmp_path / kind)
        assert json.loads((tmp_path / kind / "stats.json").read_text())["totals"]["docs"] == len(ids[kind])
    import ray

    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2  # the head's CPUs, not ours
    assert ids["ray"] == ids["local"] and len(ids["ray"]) > 50


@pytest.mark.parametrize("name", ["definemed-qwen2.5-7b", "definemed-mistral-7b", "definemed-mistral-small-24b"])
def test_definemed_ray_block_gives_the_classifier_gpus_the_plan_assumes(name, tmp_path):
    from finemed.orchestrate.plan import make_plan

    path = Path(__file__).resolve().parents[2] / "recipes" / f"{name}.yaml"
    corpus = next(s for s in make_plan(path, runs_dir=tmp_path).stages if s.kind == "corpus.build")
    assert corpus.estimate["gpu_hours_per_million_docs"] > 0  # the plan scores on GPU ...
    assert corpus.estimate["classifier_gpus_per_task"] >= 1 and "warning" not in corpus.estimate  # ... so does Ray
    no_gpu = make_plan(path, ["corpus.executor.ray.gpus_per_task=0"], runs_dir=tmp_path / "b")
    corpus = next(s for s in no_gpu.stages if s.kind == "corpus.build")
    assert "on CPU" in corpus.estimate["warning"]

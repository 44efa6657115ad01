"""Slurm: scripts and pickled executors are emitted without a cluster. Ray: a local ray.init run."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from finemed.corpus.build import CorpusBuildConfig, run


def test_slurm_emits_chained_sbatch_scripts(small_dev, small_clf, tmp_path):
    cfg = CorpusBuildConfig(input=str(small_dev), classifier=str(small_clf),
                            executor={"kind": "slurm", "slurm": {"partition": "cpu-long", "time": "02:00:00"}})
    run(cfg, tmp_path / "run")
    slurm = tmp_path / "run" / "slurm"
    stages = ["filter", "minhash_buckets", "minhash_cluster", "final"]
    for name in stages:
        script = (slurm / name / "launch_script.slurm").read_text()
        assert "#SBATCH --partition=cpu-long" in script and "#SBATCH --time=02:00:00" in script
        assert "launch_pickled_pipeline" in script and (slurm / name / "executor.pik").stat().st_size > 100
    assert "#SBATCH --array=0-13" in (slurm / "minhash_buckets" / "launch_script.slurm").read_text()
    submit = (slurm / "submit.sh").read_text()
    assert submit.count("sbatch --parsable") == 4 and "afterok" in submit
    assert not (tmp_path / "run" / "output").exists()  # nothing ran


@pytest.mark.slow
def test_ray_executor_matches_local(small_dev, small_clf, tmp_path):
    pytest.importorskip("ray")
    ids = {}
    for kind in ("local", "ray"):
        run(CorpusBuildConfig(input=str(small_dev), classifier=str(small_clf), executor={"kind": kind, "workers": 2}),
            tmp_path / kind)
        ids[kind] = {i for f in (tmp_path / kind / "output").glob("*.parquet")
                     for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}
        assert json.loads((tmp_path / kind / "stats.json").read_text())["totals"]["docs"] == len(ids[kind])
    assert ids["ray"] == ids["local"] and len(ids["ray"]) > 50

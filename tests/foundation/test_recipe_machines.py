"""Multi-node ``finemed run``, rehearsed as 2 machines x 1 process on 127.0.0.1 (issue 22 item 14).

Two ``finemed run`` processes share one run dir and one main port, with machine ranks 0 and 1 (as ``srun`` starts
one per node): the non-training stages run and write on machine 0 only, machine 1 waits for their markers and
joins the 2-machine CPT stage, and rank 0 alone writes the model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finemed.core import stages
from finemed.core.procs import free_port
from finemed.orchestrate.recipe import MARKERS, load_recipe, spans_machines


def _recipe(tmp_path: Path, model: Path, med: Path) -> Path:
    bpb = {"sets": {"medical": "builtin:grascco"}, "max_docs": 2, "max_chars": 800, "max_length": 64,
           "dtype": "float32"}
    recipe = {"name": "machines", "stages": [
        {"name": "bpb", "kind": "eval.bpb", "config": {"model": str(model), **bpb}},
        {"name": "cpt", "kind": "train.cpt", "config": {
            "model": str(model), "domain": {"source": str(med)}, "general_eval": {}, "heldout_fraction": 0.2,
            "eval_max_docs": 1, "seq_len": 32, "batch_size": 2, "max_steps": 2, "warmup_steps": 1, "lr": 5e-3,
            "save_steps": 100, "logging_steps": 1, "report_to": [], "dtype": "float32",
            "launch": {"processes": 1, "machines": 2, "strategy": "ddp"}}},
        {"name": "bpb_after", "kind": "eval.bpb", "config": {"model": "${stage:cpt}/model", **bpb}}]}
    path = tmp_path / "machines.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _med(tmp_path: Path) -> Path:
    from finemed.data.loaders import load_grascco

    path = tmp_path / "med.jsonl"
    path.write_text("\n".join(json.dumps({"text": d.text[:1200]}, ensure_ascii=False) for d in load_grascco()[:8]))
    return path


def test_two_machines_run_each_non_training_stage_once(tmp_path, tiny_model_dir):
    path = _recipe(tmp_path, tiny_model_dir, _med(tmp_path))
    entries = load_recipe(path).stages[:2]
    assert [spans_machines(stages.get(e.kind).config.model_validate(e.config)) for e in entries] == [False, True]
    runs = tmp_path / "runs"
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), FINEMED_RUN_ID="rehearsal-1",
               OMP_NUM_THREADS="1")
    env.pop("SLURM_NODEID", None)
    finemed = [sys.executable, "-m", "finemed.cli", "run", str(path), "--runs-dir", str(runs)]
    procs = [subprocess.Popen(finemed, env=dict(env, FINEMED_MACHINE_RANK=str(m)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True) for m in (1, 0)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=600)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    log1, log0 = logs
    assert [p.returncode for p in procs] == [0, 0], log0[-2000:] + log1[-2000:]
    for stage in ("bpb", "bpb_after"):  # machine 0 runs and writes them; machine 1 never starts them
        assert log0.count(f"stage {stage} (eval.bpb) starting") == 1
        assert f"stage {stage} (" not in log1
    assert "machine 1: joining stage cpt" in log1 and "stage cpt (train.cpt) complete" in log0
    root = runs / "machines"
    markers = {p.stem: json.loads(p.read_text())["status"] for p in (root / MARKERS).glob("*.json")}
    assert markers == {"bpb": "complete", "cpt": "complete", "bpb_after": "complete"}
    summary = json.loads((root / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["bpb", "cpt", "bpb_after"]
    assert json.loads((root / "cpt" / "metrics.json").read_text())["steps"] == 2
    assert (root / "bpb_after" / "metrics.json").is_file()


def test_a_stage_spanning_machines_needs_a_run_id(tmp_path, tiny_model_dir, monkeypatch):
    """Without FINEMED_RUN_ID or SLURM_JOB_ID, markers of an earlier run would pass for this one: refused up front."""
    from finemed.core.config import FinemedError
    from finemed.orchestrate.recipe import run_recipe

    path = _recipe(tmp_path, tiny_model_dir, _med(tmp_path))
    for var in ("FINEMED_RUN_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(FinemedError, match="stage cpt spans machines, and their markers need a run id: set "
                                           "FINEMED_RUN_ID"):
        run_recipe(path, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing ran

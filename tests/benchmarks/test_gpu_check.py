"""``benchmarks/gpu_check.py --cpu``: the GPU check's own code, tiny, on CPU (issue 22: ready to run on a GPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(SCRIPT), "--cpu", *args], capture_output=True, text=True, env=env,
                          timeout=900)


def test_gpu_check_cpt_part_on_cpu():
    """The CPT MFU part through finemed's CPT trainer on a tiny Llama: a tokens/s and an mfu line, then ok."""
    out = _run("--only", "cpt")
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stdout[-1500:] + out.stderr[-1500:]
    assert lines[-1] == "gpu_check=ok"
    assert lines[0].startswith("cpt: ") and "mfu" in lines[0]


@pytest.mark.slow
def test_gpu_check_all_parts_on_cpu():
    """All three parts on SmolLM2 (CPU): QA through the HF backend (vLLM skipped with one line where it is not
    importable) and one KD step with a bf16 teacher, each one result line."""
    out = _run()
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stdout[-1500:] + out.stderr[-1500:]
    assert [x.split(":")[0] for x in lines[:3]] == ["cpt", "qa", "kd"] and lines[-1] == "gpu_check=ok"
    assert "teacher bf16" in lines[2] and "loss" in lines[2]

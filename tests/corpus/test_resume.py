"""Resume: SIGKILL a build midway, rerun it, and get the same doc-id set as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

SCRIPT = """
import sys
from finemed.corpus.build import CorpusBuildConfig, run
if __name__ == "__main__":
    run(CorpusBuildConfig(input=sys.argv[1], classifier=sys.argv[2], executor={"workers": 1}), sys.argv[3])
"""


def _ids(run_dir: Path) -> set[str]:
    return {i for f in (run_dir / "output").glob("*.parquet")
            for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}


def _launch(script: Path, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.mark.slow  # ~56 s: in `make test-all`; make test keeps CPT and KD kill-and-resume (tests/cpt)
def test_sigkill_midway_then_rerun_gives_same_ids(small_dev, small_clf, tmp_path):
    script = tmp_path / "build.py"
    script.write_text(SCRIPT)
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert _launch(script, [str(small_dev), str(small_clf), str(full)]).wait(300) == 0
    proc = _launch(script, [str(small_dev), str(small_clf), str(killed)])
    completions = killed / "logs" / "filter" / "completions"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if completions.is_dir() and len(list(completions.iterdir())) >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "build finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(completions.iterdir()))
    assert 1 <= done_before < 4 and not (killed / "stats.json").exists()
    assert _launch(script, [str(small_dev), str(small_clf), str(killed)]).wait(300) == 0
    assert _ids(killed) == _ids(full) and len(_ids(full)) > 50

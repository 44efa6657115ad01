"""``benchmarks/scaling.py --quick``: two tiny sizes of tokenizer.eval, each in a fresh child process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGE = "tokenizer.eval"


def test_quick_scaling_writes_exponents(tmp_path):
    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--quick", "--stages", STAGE,
                           "--out", str(out), "--workdir", str(work)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = re.search(rf"^{re.escape(STAGE)} a_time=(-?[\d.]+) a_rss=(-?[\d.]+)$", proc.stdout, re.M)
    assert line, proc.stdout
    assert (out / "scaling.md").is_file() and (out / "scaling.png").stat().st_size > 1000
    md = (out / "scaling.md").read_text()
    assert f"| {STAGE} | sentences | 100 / 400 |" in md and "above the import baseline" in md
    (res,) = json.loads((out / "scaling.json").read_text())
    assert [p["n"] for p in res["points"]] == [100, 400]
    assert all(p["seconds"] > 0 and p["rss_mb"] > res["baseline_mb"] * 0.5 for p in res["points"])
    assert isinstance(res["a_time"], float) and isinstance(res["a_rss"], float)
    assert 0 < res["baseline_mb"] < 2000  # the child's own peak, not the parent's (see LAUNCHER)
    assert not list(work.iterdir())  # the scratch dir is removed

"""Benchmark: ``finemed merge`` vs the ``mergekit-yaml`` CLI on a SmolLM2 SLERP (same YAML, same machine).

The second model is SmolLM2 with Gaussian noise (std 1e-2) added to every weight, so SLERP does not fall
back to linear interpolation for near-parallel tensors. Both tools run as separate processes in
alternating order (``--rounds`` each); wall time and peak RSS come from ``os.wait4``. The outputs are
checked for bit-identity. Goals: time ratio <= 1.05, peak-RSS ratio <= 1.1. Last line: ``ratio=<time>``.

    python benchmarks/bench_merge.py [--rounds 2] [--workdir /tmp/bench_merge]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def make_pair(workdir: Path, noise: float = 1e-2) -> tuple[Path, Path]:
    """The cached SmolLM2 dir and a noisy copy of it (safetensors + tokenizer)."""
    import torch

    from finemed.models.loading import load_causal_lm, save_model
    from finemed.models.registry import resolve_model_path

    base = resolve_model_path("smollm2")
    other = workdir / "smollm2-noisy"
    if not (other / "model.safetensors").is_file():
        model, tok = load_causal_lm(base)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * noise)
        save_model(model, tok, other)
    return base, other


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB) of that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {err[-800:]}")
    return wall, usage.ru_maxrss / 1024


def identical(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return ta.keys() == tb.keys() and all(bool((ta[k] == tb[k]).all()) for k in ta)


def main() -> None:
    import yaml

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_merge"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    base, other = make_pair(args.workdir)
    cfg = args.workdir / "slerp.yaml"
    cfg.write_text(yaml.safe_dump({"merge_method": "slerp", "base_model": str(base), "dtype": "float32",
                                   "models": [{"model": str(base)}, {"model": str(other)}],
                                   "parameters": {"t": 0.5}}, sort_keys=False))
    runs: dict[str, list[tuple[float, float]]] = {"finemed": [], "mergekit": []}
    for r in range(args.rounds):
        order = ["mergekit", "finemed"] if r % 2 == 0 else ["finemed", "mergekit"]
        for tool in order:
            out = args.workdir / f"out-{tool}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = ([str(BIN / "mergekit-yaml"), str(cfg), str(out)] if tool == "mergekit"
                   else [str(BIN / "finemed"), "merge", str(cfg), "--out", str(out)])
            runs[tool].append(timed(cmd))
            print(f"round {r} {tool:8s} {runs[tool][-1][0]:7.2f} s  peak RSS {runs[tool][-1][1]:7.0f} MB", flush=True)
    same = identical(args.workdir / "out-finemed" / "model", args.workdir / "out-mergekit")  # run dir/model
    t_ours = statistics.median(w for w, _ in runs["finemed"])
    t_peer = statistics.median(w for w, _ in runs["mergekit"])
    m_ours = max(m for _, m in runs["finemed"])
    m_peer = max(m for _, m in runs["mergekit"])
    print(f"finemed merge:  median {t_ours:.2f} s, peak RSS {m_ours:.0f} MB")
    print(f"mergekit-yaml:  median {t_peer:.2f} s, peak RSS {m_peer:.0f} MB")
    print(f"outputs bit-identical: {same}")
    print(f"rss_ratio={m_ours / m_peer:.3f} (goal <= 1.1)")
    print(f"time_ratio={t_ours / t_peer:.3f} (goal <= 1.05)")
    print(f"ratio={t_ours / t_peer:.3f}")


if __name__ == "__main__":
    main()

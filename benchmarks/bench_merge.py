"""Benchmark: ``finemed merge`` vs the ``mergekit-yaml`` CLI on a SmolLM2 SLERP (same YAML, same machine).

The second model is SmolLM2 with Gaussian noise (std 1e-2) added to every weight, so SLERP does not fall
back to linear interpolation for near-parallel tensors. Each tool runs in a fresh process: one untimed
warm-up run of each (page cache, ``.pyc`` files), then ``--rounds`` (>= 3) rounds in alternating order
(:mod:`_rounds`); wall time and peak RSS come from ``os.wait4``. The outputs are checked for bit-identity.
Both ratios are mergekit over finemed (> 1: ours faster / smaller), summarised as min/median/max.
Goals: time ratio >= 0.95, peak-RSS ratio >= 0.91. Last lines: ``ratio means: ...`` and
``ratio=<median time ratio>``.

Differences in work: both call mergekit's ``run_merge`` with the same options (the peer gets
``--out-shard-size 1B --lazy-unpickle``, what finemed passes); finemed also checks architecture, shapes and
vocabulary of both models before reading a tensor, reopens each input's safetensors file per tensor (so read
pages leave RSS), writes into a temporary dir renamed at the end, and writes its run dir (``manifest.json``,
``metrics.json``, the YAML).

    python benchmarks/bench_merge.py [--rounds 3] [--workdir /tmp/bench_merge]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

from _rounds import fresh_process, print_ratio, report, rounds_arg, run_rounds

BIN = Path(sys.executable).parent
RATIO = "mergekit-yaml seconds / finemed merge seconds, same YAML and options (> 1: ours faster)"


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


def identical(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return ta.keys() == tb.keys() and all(bool((ta[k] == tb[k]).all()) for k in ta)


def main() -> None:
    import yaml

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=rounds_arg, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_merge"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    base, other = make_pair(args.workdir)
    cfg = args.workdir / "slerp.yaml"
    cfg.write_text(yaml.safe_dump({"merge_method": "slerp", "base_model": str(base), "dtype": "float32",
                                   "models": [{"model": str(base)}, {"model": str(other)}],
                                   "parameters": {"t": 0.5}}, sort_keys=False))
    rss: dict[str, list[float]] = {"finemed": [], "mergekit": []}

    def side(tool: str):
        def once() -> float:
            out = args.workdir / f"out-{tool}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = ([str(BIN / "mergekit-yaml"), str(cfg), str(out), "--out-shard-size", "1B", "--lazy-unpickle"]
                   if tool == "mergekit" else [str(BIN / "finemed"), "merge", str(cfg), "--out", str(out)])
            run = fresh_process(cmd)
            rss[tool].append(run.peak_rss_mb)
            print(f"  {tool:8s} {run.wall_s:7.2f} s  peak RSS {run.peak_rss_mb:7.0f} MB", flush=True)
            return run.wall_s
        return once

    res = run_rounds({"mergekit": side("mergekit"), "finemed": side("finemed")}, args.rounds, warmup=True, unit="s")
    for tool in rss:
        del rss[tool][0]  # the untimed warm-up run
    same = identical(args.workdir / "out-finemed" / "model", args.workdir / "out-mergekit")  # run dir/model
    print(f"finemed merge:  median {statistics.median(res.values['finemed']):.2f} s, "
          f"peak RSS {max(rss['finemed']):.0f} MB")
    print(f"mergekit-yaml:  median {statistics.median(res.values['mergekit']):.2f} s, "
          f"peak RSS {max(rss['mergekit']):.0f} MB")
    print(f"outputs bit-identical: {same}")
    report("rss_ratio", [a / b for a, b in zip(rss["mergekit"], rss["finemed"])],
           "(peak RSS mergekit / finemed; > 1: ours smaller; goal >= 0.91)")
    ratios = res.ratios("mergekit", "finemed")
    report("time_ratio", ratios, "(seconds mergekit / finemed; goal >= 0.95)")
    print_ratio(ratios, RATIO)


if __name__ == "__main__":
    main()

"""``finemed train distill``: parse, load the DistillConfig, call :mod:`finemed.training.distill`.

    finemed train distill -c recipes/distill.yaml --out runs/kd            # KD (+ CE baseline) and the report
    finemed train distill cache-logits -c recipes/distill.yaml --out runs/kd-logits   # teacher once, top-k cache
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Teacher → student logit distillation (online, offline top-k, on-policy).")


def _config(config: Optional[Path], set_: Optional[list[str]], teacher: Optional[str], mode: Optional[str] = None,
            k: Optional[int] = None):
    from finemed.config import load_config
    from finemed.training.distill import DistillConfig

    base: dict = {}
    if teacher:
        base["teacher"] = teacher
    if mode:
        base["mode"] = mode
    if k is not None:
        base["top_k"] = k
    return load_config(DistillConfig, config, set_, base=base)


@app.callback(invoke_without_command=True)
def distill(ctx: typer.Context,
            config: Optional[Path] = typer.Option(None, "--config", "-c", help="DistillConfig YAML (optional)"),
            set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a key: steps=100, mode=online"),
            teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher: HF dir or registered name"),
            mode: Optional[str] = typer.Option(None, "--mode", help="online | offline | on_policy"),
            out: Optional[Path] = typer.Option(None, "--out", help="Run dir: student/, logits/, metrics.json")):
    """Distil a student (layer-dropped from the teacher or --set student=DIR) and compare with CE-only."""
    if ctx.invoked_subcommand is not None:
        return
    from finemed.config import FinemedError
    from finemed.training.distill import run

    cfg = _config(config, set_, teacher, mode)
    if out is None:
        raise FinemedError("train distill: --out DIR is required (where the student, cache and metrics go)")
    result = run(cfg, out)
    typer.echo(json.dumps({k: v for k, v in result.items() if not k.endswith("_train")}, indent=2))


@app.command("cache-logits")
def cache_logits_cmd(config: Optional[Path] = typer.Option(None, "--config", "-c", help="DistillConfig YAML"),
                     set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a key"),
                     teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher: HF dir or name"),
                     k: Optional[int] = typer.Option(None, "--k", help="Logits kept per token (top_k)"),
                     shard_size: int = typer.Option(64, "--shard-size", help="Sequences per shard"),
                     out: Path = typer.Option(..., "--out", help="Cache dir (rerun to resume after a crash)")):
    """Run the teacher once over the KD data and store top-k logits + rest mass in sharded safetensors."""
    from finemed.training.distill import cache_logits

    report = cache_logits(_config(config, set_, teacher, k=k), out, shard_size=shard_size)
    typer.echo(json.dumps(report.model_dump(), indent=2))

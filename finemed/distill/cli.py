"""``finemed train distill``: thin wrappers over stages ``train.distill`` and ``train.cache_logits``.

    finemed train distill -c recipes/distill.yaml --out runs/kd            # KD (+ CE baseline) and the report
    finemed train distill cache-logits -c cache.yaml --out runs/kd-logits  # teacher once, top-k cache
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from finemed.core.config import FinemedError
from finemed.orchestrate.stage_cli import CONFIG, FORCE, OUT, SET, echo_json, run_command

app = typer.Typer(help="Teacher → student logit distillation (online, offline top-k, on-policy).")
SUMMARY = ("mode", "parameter_reduction_pct", "bpb_teacher", "bpb_student_init", "bpb_student", "bpb_ce",
           "kd_beats_ce", "qa", "retention")


@app.callback(invoke_without_command=True)
def distill(ctx: typer.Context,
            config: Optional[Path] = CONFIG,
            set_: Optional[list[str]] = SET,
            out: Optional[Path] = typer.Option(None, "--out", help="Run dir: student/, logits/, report.md, "
                                                                   "metrics.json"),
            force: bool = FORCE,
            teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher: HF dir or registered name"),
            student: Optional[str] = typer.Option(None, "--student", help="Student HF dir (default: layer-dropped)"),
            mode: Optional[str] = typer.Option(None, "--mode", help="online | offline | on_policy"),
            device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N")):
    """Distil a student (layer-dropped from the teacher, or --student DIR) and compare with CE-only."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise FinemedError("train distill: --out DIR is required (where the student, cache and metrics go)")
    flags = {"teacher": teacher, "student": student, "mode": mode, "device": device}
    res = run_command("train.distill", config, set_, out, flags=flags, force=force)
    echo_json({k: res.get(k) for k in SUMMARY})


@app.command("cache-logits")
def cache_logits_cmd(config: Optional[Path] = CONFIG,
                     set_: Optional[list[str]] = SET,
                     out: Path = OUT,
                     force: bool = FORCE,
                     teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher: HF dir or name"),
                     k: Optional[int] = typer.Option(None, "--k", help="Logits kept per token (top_k)"),
                     shard_size: Optional[int] = typer.Option(None, "--shard-size", help="Sequences per shard"),
                     device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N")):
    """Run the teacher once over the KD data and store top-k logits + rest mass in sharded safetensors
    (stage train.cache_logits; a rerun of an interrupted cache resumes it)."""
    flags = {"teacher": teacher, "top_k": k, "shard_size": shard_size, "device": device}
    echo_json(run_command("train.cache_logits", config, set_, out, flags=flags, force=force))

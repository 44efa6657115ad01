"""``finemed train cpt``: a thin wrapper over stage ``train.cpt`` (and the accelerate FSDP config emitter)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from finemed.core.config import FinemedError
from finemed.cpt.launch import write_accelerate_config
from finemed.orchestrate.stage_cli import CONFIG, FORCE, SET, build_config, echo_json, run_command

app = typer.Typer(help="Continual pre-training (packing, replay, bpb evals, exact resume).")
SUMMARY = ("model_dir", "bpb_before", "bpb_after", "domain_bpb_drop", "steps", "final_loss", "tokens_per_second",
           "resumed_from")


@app.callback(invoke_without_command=True)
def cpt(ctx: typer.Context,
        config: Optional[Path] = CONFIG,
        set_: Optional[list[str]] = SET,
        out: Optional[Path] = typer.Option(None, "--out", help="Run dir: model/, checkpoints/, tb/, metrics.json"),
        force: bool = FORCE,
        model: Optional[str] = typer.Option(None, "--model", help="Model: HF dir or registered name (smollm2)"),
        data: Optional[str] = typer.Option(None, "--data", help="Domain text source (path, builtin:NAME, hf:DS)"),
        device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
        emit_accelerate_config: Optional[Path] = typer.Option(
            None, "--emit-accelerate-config", help="Write an accelerate FSDP config YAML here and exit"),
        num_processes: Optional[int] = typer.Option(None, "--num-processes",
                                                    help="GPUs in the emitted accelerate config (default 8)")):
    """Continually pre-train a causal LM on domain text.

    Multi-GPU: `finemed train cpt --model M --emit-accelerate-config fsdp.yaml`, then
    `accelerate launch --config_file fsdp.yaml -m finemed.cli train cpt -c cpt.yaml --out runs/cpt`.
    """
    if ctx.invoked_subcommand is not None:
        return
    flags = {"model": model, "domain.source": data, "device": device}
    if emit_accelerate_config is not None:
        cfg = build_config("train.cpt", config, set_, flags)
        extra = {"num_processes": num_processes} if num_processes is not None else {}
        path = write_accelerate_config(emit_accelerate_config, cfg.model, **extra)
        typer.echo(f"wrote {path}: accelerate launch --config_file {path} -m finemed.cli train cpt ...")
        return
    if out is None:
        raise FinemedError("train cpt: --out DIR is required (where the model, checkpoints and metrics go)")
    res = run_command("train.cpt", config, set_, out, flags=flags, force=force)
    echo_json({k: res.get(k) for k in SUMMARY})

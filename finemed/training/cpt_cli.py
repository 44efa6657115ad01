"""``finemed train cpt``: parse, load the config, call :func:`finemed.training.cpt.run`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def cpt(config: Optional[Path] = typer.Option(None, "--config", "-c", help="CptConfig YAML (optional)"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a key: lr=1e-4, domain.source=x.jsonl"),
        model: Optional[str] = typer.Option(None, "--model", help="Model: HF dir or registered name (smollm2)"),
        data: Optional[str] = typer.Option(None, "--data", help="Domain text: jsonl/txt/parquet, builtin:NAME, hf:DS"),
        out: Optional[Path] = typer.Option(None, "--out", help="Run dir: model/, checkpoints/, tb/, metrics.json"),
        emit_accelerate_config: Optional[Path] = typer.Option(
            None, "--emit-accelerate-config", help="Write an accelerate FSDP config YAML here and exit"),
        num_processes: int = typer.Option(8, "--num-processes", help="GPUs for the emitted accelerate config")):
    """Continually pre-train a causal LM on domain text (packing, replay, bpb evals, exact resume).

    Multi-GPU: `finemed train cpt --model M --emit-accelerate-config fsdp.yaml`, then
    `accelerate launch --config_file fsdp.yaml -m finemed.cli train cpt -c cpt.yaml --out runs/cpt`.
    """
    from finemed.config import FinemedError, load_config
    from finemed.training.cpt import CptConfig, fsdp_accelerate_config, run

    base: dict = {}
    if model:
        base["model"] = model
    if data:
        base["domain"] = {"source": data}
    cfg = load_config(CptConfig, config, set_, base=base)
    if emit_accelerate_config is not None:
        import yaml

        from finemed.artifacts import atomic_write_text

        acc = fsdp_accelerate_config(cfg.model, num_processes=num_processes)
        atomic_write_text(emit_accelerate_config, yaml.safe_dump(acc, sort_keys=False))
        typer.echo(f"wrote {emit_accelerate_config}: accelerate launch --config_file {emit_accelerate_config} "
                   f"-m finemed.cli train cpt ...")
        return
    if out is None:
        raise FinemedError("train cpt: --out DIR is required (where the model, checkpoints and metrics go)")
    result = run(cfg, out)
    typer.echo(json.dumps(result.model_dump(), indent=2))

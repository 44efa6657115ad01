"""``finemed merge CONFIG.yaml --out DIR`` and ``finemed merge sweep``: parse, load the config, call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup


class _DefaultToApply(TyperGroup):
    """``finemed merge CONFIG.yaml ...`` runs the hidden ``apply`` command; ``finemed merge sweep`` the sweep."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["apply", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultToApply, no_args_is_help=True,
                  help="Merge models with mergekit (finemed short form or raw mergekit YAML); sweep SLERP t.",
                  epilog="Merge: finemed merge CONFIG.yaml --out DIR [--set t=0.3]. CONFIG is a mergekit YAML "
                         "or the short form {base, cpt, method, t, density}. Sweep: finemed merge sweep --help.")


@app.command("apply", hidden=True)
def apply(config: Path = typer.Argument(..., help="Merge YAML: short form (base, cpt, method, t) or mergekit YAML"),
          out: Path = typer.Option(..., "--out", help="Output HF model dir (with tokenizer)"),
          set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a key: t=0.3, method=linear")):
    """Merge the models named in CONFIG.yaml into --out."""
    from finemed.merging.merge import merge_file

    typer.echo(str(merge_file(config, out, set_)))


@app.command("sweep")
def sweep(config: Optional[Path] = typer.Option(None, "--config", "-c", help="SweepConfig YAML"),
          base: Optional[str] = typer.Option(None, "--base", help="Instruct model (HF dir or name)"),
          cpt: Optional[str] = typer.Option(None, "--cpt", help="CPT model dir"),
          out: Path = typer.Option(..., "--out", help="Run dir: sweep.json, sweep.png, merged-t*/"),
          set_: Optional[list[str]] = typer.Option(None, "--set", help="Override: t_values=[0,0.5,1]")):
    """Merge at several t, score domain/general bpb and the instruction probe, plot, pick t by the rule."""
    from finemed.config import load_config
    from finemed.merging.sweep import SweepConfig, run

    base_cfg: dict = {}
    if base:
        base_cfg["base"] = base
    if cpt:
        base_cfg["cpt"] = cpt
    cfg = load_config(SweepConfig, config, set_, base=base_cfg)
    result = run(cfg, out)
    typer.echo(json.dumps({k: v for k, v in result.model_dump().items() if k != "points"}, indent=2))

"""``finemed merge CONFIG.yaml --out DIR`` (stage ``merge.apply``) and ``finemed merge sweep`` (``merge.sweep``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from finemed.core.config import read_yaml
from finemed.orchestrate.stage_cli import CONFIG, FORCE, OUT, SET, run_command


class _DefaultToApply(TyperGroup):
    """``finemed merge CONFIG.yaml ...`` runs the hidden ``apply`` command; ``finemed merge sweep`` the sweep."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["apply", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultToApply, no_args_is_help=True,
                  help="Merge models with mergekit (finemed short form or raw mergekit YAML); sweep SLERP t.",
                  epilog="Merge: finemed merge CONFIG.yaml --out DIR [--set t=0.3]. CONFIG is a mergekit YAML "
                         "or the short form {base, cpt, method, t, density}; the model goes to DIR/model. "
                         "Sweep: finemed merge sweep --help.")


@app.command("apply", hidden=True)
def apply(config: Path = typer.Argument(..., help="Merge YAML: short form (base, cpt, method, t) or mergekit YAML"),
          set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE):
    """Merge the models named in CONFIG.yaml into OUT/model."""
    data = read_yaml(config)
    if "merge_method" in data:  # a raw mergekit YAML: the stage's ``mergekit`` key, --set addresses its keys
        seed = data.pop("random_seed", None)
        sets = [s if s.startswith("random_seed=") else f"mergekit.{s}" for s in set_ or []]
        res = run_command("merge.apply", None, sets, out, force=force,
                          flags={"mergekit": data, "random_seed": seed})
    else:
        res = run_command("merge.apply", config, set_, out, force=force)
    typer.echo(res["model"])


@app.command("sweep")
def sweep(base: Optional[str] = typer.Option(None, "--base", help="Instruct model (HF dir or name)"),
          cpt: Optional[str] = typer.Option(None, "--cpt", help="CPT model dir"),
          config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE):
    """Merge at several t, score domain/general bpb and the instruction probe, plot, pick t by the rule."""
    res = run_command("merge.sweep", config, set_, out, force=force, flags={"base": base, "cpt": cpt})
    typer.echo(json.dumps({k: v for k, v in res.items() if k != "points"}, indent=2))

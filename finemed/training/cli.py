"""``finemed train``: mounts ``cpt`` (finemed/training/cpt_cli.py) and ``distill`` (finemed/training/distill_cli.py)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(help="Continual pre-training and knowledge distillation.", no_args_is_help=True)

try:
    app.command("cpt")(importlib.import_module("finemed.training.cpt_cli").cpt)
except ModuleNotFoundError as err:
    if not (err.name or "").startswith("finemed"):
        raise
try:
    app.add_typer(importlib.import_module("finemed.training.distill_cli").app, name="distill")
except ModuleNotFoundError as err:
    if not (err.name or "").startswith("finemed"):
        raise

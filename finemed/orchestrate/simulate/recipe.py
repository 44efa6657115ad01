"""``finemed plan RECIPE --simulate``: run every training stage of a recipe in the fake world, report its peaks.

Per stage and phase (load, eval, wrap, step, gather, save): the bytes rank 0 holds on its GPU and on the host.
A phase over the device (``--gpu-gib``, 80 by default: one H100) or a problem the run would hit (a frozen teacher
in fp32 on every GPU, evaluation on the host of a GPU job, an FSDP wrap class the model lacks) fails the plan with
exit 2 and one line; the table is printed first. ``simulate.json`` in the run root keeps the figures, and
``finemed plan`` shows them beside its analytic estimate.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from finemed.core.artifacts import atomic_write_json, config_hash
from finemed.core.config import FinemedError
from finemed.core.logs import get_logger
from finemed.orchestrate.recipe import load_recipe, resolve_stages, run_root
from finemed.orchestrate.simulate.fakes import fake_process_group, simulated_node
from finemed.orchestrate.simulate.training import GIB, SIMULATORS, StageSim

SIM_FILE = "simulate.json"
log = get_logger(__name__)


class Simulation(BaseModel):
    recipe: str
    gpu_gib: float
    stages: list[StageSim]
    problems: list[str]
    config_hashes: dict[str, str] = {}  # stage -> the config it simulated (a later plan shows only matching ones)


def simulate_stage(name: str, kind: str, cfg, gpu_gib: float = 80.0) -> StageSim:
    """One training stage in the fake world; its problems include every phase over ``gpu_gib``."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    launch = cfg.launch
    fsdp = launch.strategy == "fsdp"
    with simulated_node(launch.world_size, fsdp=fsdp, ram_efficient_loading=kind == "train.cpt"), \
            fake_process_group(launch.world_size), FakeTensorMode(allow_non_fake_inputs=True):
        try:
            sim = SIMULATORS[kind](name, cfg)
        except FinemedError as err:
            sim = StageSim(stage=name, kind=kind, model=str(getattr(cfg, "model", "")), world=launch.world_size,
                           strategy=launch.strategy, phases=[], problems=[str(err)])
    for ph in sim.phases:
        if ph.gpu_bytes > gpu_gib * GIB:
            sim.problems.append(f"{name}: phase {ph.phase} needs {ph.gpu_bytes / GIB:.1f} GiB on rank 0's GPU, over "
                                f"the device's {gpu_gib:g} GiB ({launch.processes} process(es) x "
                                f"{launch.machines} machine(s), {launch.strategy})")
    return sim


def simulate_recipe(path: Path | str, overrides: list[str] | None = None, *, gpu_gib: float = 80.0,
                    runs_dir: Path | None = None) -> Simulation:
    recipe = load_recipe(path, overrides)
    root = run_root(recipe, runs_dir, False)
    resolved = [(entry, cfg) for entry, cfg in resolve_stages(recipe, root, str(path)) if entry.kind in SIMULATORS]
    sims = [simulate_stage(entry.name, entry.kind, cfg, gpu_gib) for entry, cfg in resolved]
    out = Simulation(recipe=recipe.name, gpu_gib=gpu_gib, stages=sims, problems=[p for s in sims for p in s.problems],
                     config_hashes={entry.name: config_hash(cfg) for entry, cfg in resolved})
    atomic_write_json(root / SIM_FILE, out)
    return out


def read_simulation(root: Path, hashes: dict[str, str]) -> dict[str, float]:
    """Stage name -> simulated peak GiB on rank 0's GPU, from an earlier ``--simulate`` of the same stage configs
    (``hashes``: stage -> config hash now); a stage whose config changed since, or an unreadable file, gives none."""
    file = Path(root) / SIM_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        log.warning("plan: %s is unreadable (%s); run `finemed plan --simulate` again", file, err)
        return {}
    then = data.get("config_hashes") or {}
    return {s["stage"]: round(max((p["gpu_bytes"] for p in s["phases"]), default=0) / GIB, 1)
            for s in data.get("stages", []) if then.get(s["stage"]) is not None
            and then.get(s["stage"]) == hashes.get(s["stage"])}


def print_simulation(sim: Simulation) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{sim.recipe}: simulated peak per rank (rank 0), GiB; device {sim.gpu_gib:g} GiB")
    for col in ("stage", "ranks", "phase", "GPU", "host", "note"):
        table.add_column(col)
    for s in sim.stages:
        for i, ph in enumerate(s.phases):
            table.add_row(s.stage if i == 0 else "", f"{s.world} {s.strategy}" if i == 0 else "", ph.phase,
                          f"{ph.gpu_bytes / GIB:.1f}", f"{ph.host_bytes / GIB:.1f}", ph.note)
    Console(width=200).print(table)
    for p in sim.problems:
        Console(stderr=True).print(f"problem: {p}")


def check(sim: Simulation) -> None:
    if sim.problems:
        more = f" (+{len(sim.problems) - 1} more above)" if len(sim.problems) > 1 else ""
        raise FinemedError(f"simulate {sim.recipe}: {sim.problems[0]}{more}")

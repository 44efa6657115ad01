"""``finemed plan RECIPE.yaml``: what a recipe will read, write and cost, without running anything.

Per stage: its inputs (each path checked: exists, produced by an earlier stage, a hub id, or missing), its
output dir, whether it is cached, its held-out sets (non-empty, where they can be read before the run), and the
estimate its ``@planner`` gives (training: tokens, FLOPs, GPU-hours at ``--mfu``, memory per process, disk;
judging: the number of judge calls). It ends with totals and writes ``plan.json`` into the run dir, which the
HTML report sets against the actual times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from finemed.core import stages
from finemed.core.artifacts import atomic_write_json, config_hash, input_fingerprints, read_manifest, to_jsonable
from finemed.core.config import FinemedError
from finemed.core.texts import heldout_texts
from finemed.models import arch
from finemed.models.registry import is_registered
from finemed.orchestrate.recipe import config_strings, load_recipe, path_inputs, resolve_stages, run_root
from finemed.orchestrate.simulate.recipe import read_simulation

URL = re.compile(r"^[a-z][a-z0-9+.-]*://")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class PlanContext:
    """What a stage's planner may use: the MFU and GPU to size for, where earlier stages write, hints."""

    mfu: float = 0.4
    gpu: str = "h100"
    root: Path = Path("runs")
    hints: dict[str, Any] = field(default_factory=dict)
    stage_name: str = ""  # the stage being planned (its ``plan:`` hints are keyed by it)
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)  # output dir -> estimate of earlier stages


class StagePlan(BaseModel):
    name: str
    kind: str
    output: str
    cached: bool
    inputs: dict[str, str]
    heldout: dict[str, int | str] = {}
    estimate: dict[str, Any] = {}
    problems: list[str] = []


class Plan(BaseModel):
    recipe: str
    mfu: float
    gpu: str
    stages: list[StagePlan]
    totals: dict[str, float]
    problems: list[str]


def _classify(value: str, root: Path, produced: dict[str, str]) -> str | None:
    """How an input string stands before the run: None when it is not a path-like input at all."""
    if not isinstance(value, str) or not value or value.startswith("builtin:"):
        return None
    if value in arch.bundled():
        return "hub model (bundled architecture)"
    if is_registered(value):
        return "registered model"
    if value.startswith(("hf:", "local:")) or URL.match(value):
        return "remote (not checked offline)" if not value.startswith(("local:", "file://")) else None
    path = Path(value).expanduser()
    for stage, out in produced.items():
        if str(path).startswith(out):
            return f"produced by stage {stage}"
    if path.exists():
        return "exists"
    if HUB_ID.match(value) and not value.startswith((".", "/")):
        return "hub id (not checked offline)"
    if "/" in value or value.endswith((".jsonl", ".parquet", ".txt", ".json", ".yaml")):
        return "MISSING"
    return None


def _heldout(cfg: dict, inputs: dict[str, str]) -> dict[str, int | str]:
    """Held-out sizes of the config's text sets, where the source can be read now (1 text suffices)."""
    fraction = cfg.get("heldout_fraction")
    if not fraction:
        return {}
    sets: dict[str, str] = {}
    for key in ("domain", "replay"):
        if isinstance(cfg.get(key), dict) and cfg[key].get("source"):
            sets[key] = cfg[key]["source"]
    for name, ts in (cfg.get("general_eval") or {}).items():
        if isinstance(ts, dict) and ts.get("source"):
            sets[name] = ts["source"]
    out: dict[str, int | str] = {}
    for name, source in sets.items():
        state = inputs.get(source)
        if state and state.startswith(("produced by", "remote", "hub")):
            out[name] = f"checked after the run ({state})"
            continue
        out[name] = len(heldout_texts(source, fraction, max_docs=3))
    return out


def make_plan(path: Path | str, overrides: list[str] | None = None, *, mfu: float = 0.4, gpu: str = "h100",
              runs_dir: Path | None = None, rehearse: bool = False) -> Plan:
    recipe = load_recipe(path, overrides)
    root = run_root(recipe, runs_dir, rehearse)
    resolved = resolve_stages(recipe, root, str(path), rehearse=rehearse)
    ctx = PlanContext(mfu=mfu, gpu=gpu, root=root, hints=recipe.plan)
    produced: dict[str, str] = {}
    plans: list[StagePlan] = []
    # figures of an earlier `finemed plan --simulate` of these same stage configs, where one ran
    simulated = read_simulation(root, {entry.name: config_hash(cfg) for entry, cfg in resolved})
    for entry, cfg in resolved:
        out = root / entry.name
        data = to_jsonable(cfg)
        inputs = {v: state for _, v in config_strings(data) if (state := _classify(v, root, produced))}
        problems = [f"{entry.name}: input {v} does not exist" for v, s in inputs.items() if s == "MISSING"]
        old = read_manifest(out)
        cached = bool(old and old.status in ("complete", "cached") and old.config_hash == config_hash(cfg)
                      and old.inputs == input_fingerprints(path_inputs(data)))
        heldout = _heldout(data, inputs)
        problems += [f"{entry.name}: held-out set {k} is empty" for k, v in heldout.items() if v == 0]
        planner = stages.get_planner(entry.kind)
        ctx.stage_name = entry.name
        try:
            estimate = planner(cfg, ctx) if planner else {}
        except FinemedError as err:  # an input the estimate reads is bad: a problem of the plan, not a crash
            estimate = {"error": str(err)}
            problems.append(f"{entry.name}: no estimate: {err}")
        if entry.name in simulated:
            estimate = {**estimate, "simulated_peak_gib_per_rank": simulated[entry.name]}
        ctx.earlier[str(out)] = estimate
        plans.append(StagePlan(name=entry.name, kind=entry.kind, output=str(out), cached=cached, inputs=inputs,
                               heldout=heldout, estimate=estimate, problems=problems))
        produced[entry.name] = str(out)
    totals = {"gpu_hours": round(sum(p.estimate.get("gpu_hours", 0.0) for p in plans), 2),
              "max_memory_gib_per_process": max((p.estimate.get("memory_gib_per_process", 0.0) for p in plans),
                                                default=0.0),
              "disk_gib": round(sum(p.estimate.get("disk_gib", 0.0) for p in plans), 2),
              "judge_calls": sum(p.estimate.get("judge_calls", 0) for p in plans),
              "cpu_hours": round(sum(p.estimate.get("cpu_hours", 0.0) for p in plans), 2),
              "stages": len(plans), "cached": sum(p.cached for p in plans)}
    plan = Plan(recipe=recipe.name, mfu=mfu, gpu=gpu, stages=plans, totals=totals,
                problems=[x for p in plans for x in p.problems])
    atomic_write_json(root / "plan.json", plan)
    return plan

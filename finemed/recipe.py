"""``finemed run RECIPE.yaml``: run the listed stages in order, with the artifact cache and resume.

A recipe names its stages; each has a ``kind`` (a registered stage entry point) and a ``config``
validated by that stage's pydantic model. String values may reference other places:

- ``${stage:NAME}``: the artifact dir of an earlier stage, e.g. ``${stage:fetch}/model``;
- ``${data}``: the bundled data dir (FINEMED_DATA_DIR or ../shared/data);
- ``${cache}``: FINEMED_CACHE (default ~/.cache/finemed).

Inputs are fingerprinted from every config string that names an existing path, so an upstream rerun
that changes its output invalidates the downstream caches.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field, field_validator

from finemed.artifacts import StageOutcome, atomic_write_json, run_cached, to_jsonable
from finemed.config import ConfigError, StageConfig, apply_overrides, read_yaml, validate


@dataclass(frozen=True)
class StageSpec:
    """A stage kind: where its config model and entry function live, and which result key to show."""

    target: str  # "module:ConfigClass:run_function"
    metric: str = ""  # dotted key into the result shown in the summary table

    def load(self) -> tuple[type[BaseModel], Callable[[Any, Path], Any]]:
        module, cfg, fn = self.target.split(":")
        mod = importlib.import_module(module)
        return getattr(mod, cfg), getattr(mod, fn)


STAGES: dict[str, StageSpec] = {
    "models.fetch": StageSpec("finemed.models.smollm2:FetchConfig:run", "parameters"),
    "eval.bpb": StageSpec("finemed.evaluation.perplexity:BpbSetsConfig:run", "bpb"),
    "corpus.build": StageSpec("finemed.corpus.build:CorpusBuildConfig:run", "kept"),
    "tokenizer.compare": StageSpec("finemed.tokenizer.stage:TokenizerStageConfig:run", "extra_cost"),
    "train.cpt": StageSpec("finemed.training.cpt:CptConfig:run", "domain_bpb_drop"),
    "merge.sweep": StageSpec("finemed.merging.sweep:SweepConfig:run", "chosen_t"),
    "train.distill": StageSpec("finemed.training.distill:DistillConfig:run", "bpb_student"),
    "eval.qa": StageSpec("finemed.evaluation.qa:QaEvalConfig:run", "summary"),
    "eval.winrates": StageSpec("finemed.evaluation.winrate:WinrateStageConfig:run", "top"),
    "eval.failures": StageSpec("finemed.evaluation.failures:FailuresConfig:run", "summary"),
}


class StageEntry(StageConfig):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    config: dict[str, Any] = {}

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in STAGES:
            raise ValueError(f"unknown stage kind; expected one of {', '.join(sorted(STAGES))}")
        return v


class Recipe(StageConfig):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    runs_dir: str = "runs"
    stages: list[StageEntry]

    @field_validator("stages")
    @classmethod
    def _unique(cls, v: list[StageEntry]) -> list[StageEntry]:
        names = [s.name for s in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(sorted(dup))}")
        if not v:
            raise ValueError("a recipe needs at least one stage")
        return v


_REF = re.compile(r"\$\{(stage:[A-Za-z0-9_.-]+|data|cache)\}")


def _resolve(value: Any, refs: dict[str, str], where: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key not in refs:
                raise ConfigError(f"{where}: reference ${{{key}}} names no earlier stage; "
                                  f"list that stage before this one")
            return refs[key]
        return _REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _resolve(v, refs, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, refs, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _path_inputs(value: Any, prefix: str = "") -> dict[str, str]:
    """Every string in the config that names an existing file or dir, keyed by its config path."""
    found: dict[str, str] = {}
    if isinstance(value, str) and value and ("/" in value or "." in value):
        try:
            if Path(value).expanduser().exists():
                found[prefix or "value"] = str(Path(value).expanduser())
        except OSError:
            pass
    elif isinstance(value, dict):
        for k, v in value.items():
            found.update(_path_inputs(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.update(_path_inputs(v, f"{prefix}[{i}]"))
    return found


def load_recipe(path: Path | str, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe; overrides address stages by name: ``--set bpb.batch_size=4`` or ``--set name=x``."""
    data = read_yaml(path)
    stage_over, top_over = [], []
    names = {s.get("name") for s in data.get("stages", []) if isinstance(s, dict)}
    for item in overrides or []:
        head = item.split("=", 1)[0].split(".", 1)[0]
        (stage_over if head in names and "." in item.split("=", 1)[0] else top_over).append(item)
    apply_overrides(data, top_over, source="--set")
    for item in stage_over:
        head, rest = item.split(".", 1)
        for s in data["stages"]:
            if isinstance(s, dict) and s.get("name") == head:
                s.setdefault("config", {})
                apply_overrides(s["config"], [rest], source=f"--set {head}")
    return validate(Recipe, data, str(path))


def _dig(result: Any, dotted: str) -> Any:
    for part in dotted.split(".") if dotted else []:
        if isinstance(result, dict) and part in result:
            result = result[part]
        else:
            return None
    return result if dotted else None


def run_recipe(path: Path | str, overrides: list[str] | None = None, *, force: bool = False,
               only: list[str] | None = None, runs_dir: Path | None = None) -> list[StageOutcome]:
    """Run every stage of the recipe in order; return their outcomes and write ``summary.json``."""
    from finemed.data.registry import cache_dir, data_dir_or_none

    recipe = load_recipe(path, overrides)
    root = Path(runs_dir or recipe.runs_dir) / recipe.name
    refs = {"cache": str(cache_dir())}
    data_dir = data_dir_or_none()
    if data_dir is not None:
        refs["data"] = str(data_dir)
    # Validate every stage's config before running anything: a typo in stage 5 fails in a second.
    plans = []
    for entry in recipe.stages:
        refs[f"stage:{entry.name}"] = str(root / entry.name)
        where = f"{path}: stages.{entry.name}.config"
        raw = _resolve(entry.config, refs, where)
        cfg_cls, fn = STAGES[entry.kind].load()
        plans.append((entry, validate(cfg_cls, raw, where), fn))
    outcomes: list[StageOutcome] = []
    summary_rows = []
    for entry, cfg, fn in plans:
        if only and entry.name not in only:
            continue
        run_dir = root / entry.name
        inputs = _path_inputs(to_jsonable(cfg))
        outcome = run_cached(entry.name, cfg, run_dir, lambda cfg=cfg, fn=fn, rd=run_dir: fn(cfg, rd),
                             inputs=inputs, kind=entry.kind, force=force)
        outcomes.append(outcome)
        summary_rows.append({"stage": entry.name, "kind": entry.kind, "status": outcome.status,
                             "seconds": outcome.seconds,
                             "metric": STAGES[entry.kind].metric,
                             "value": _dig(outcome.result, STAGES[entry.kind].metric),
                             "result": outcome.result})
        atomic_write_json(root / "summary.json", {"recipe": recipe.name, "stages": summary_rows})
    return outcomes

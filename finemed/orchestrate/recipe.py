"""``finemed run RECIPE.yaml``: run the listed stages in order, with the artifact cache and resume.

A recipe names its stages; each has a ``kind`` (a registered stage entry point) and a ``config``
validated by that stage's pydantic model. String values may reference other places:

- ``${stage:NAME}``: the artifact dir of an earlier stage, e.g. ``${stage:fetch}/model``;
- ``${run:RECIPE/STAGE}``: a stage of another recipe's run, in the same runs dir (``--runs-dir``) and of the same
  kind (``--rehearse`` reads ``RECIPE-rehearsal``); a run that has not finished that stage is one error line naming
  the recipe to run first;
- ``${data}``: the bundled data dir (FINEMED_DATA_DIR or ../shared/data);
- ``${cache}``: FINEMED_CACHE (default ~/.cache/finemed).

Inputs are fingerprinted from every config string that names an existing path, so an upstream rerun
that changes its output invalidates the downstream caches.

Several machines (one ``finemed run`` per node, e.g. under ``srun``) share one run dir. The machine rank comes
from :func:`finemed.core.launch.machine_rank` (``FINEMED_MACHINE_RANK``, ``SLURM_NODEID``, ``NODE_RANK``). Machine 0
runs every stage; the others run only the launched training stages that span machines (``launch.machines > 1``),
where they join machine 0's ``accelerate launch`` once its launcher has prepared the stage (``launch/config.json``
written). Machine 0 writes ``RUN/.machines/<stage>.json`` when a stage
ends (status, config hash) and before a multi-machine stage starts (``launching`` or ``cached``); the other
machines wait for those markers, so every other stage runs and writes exactly once. Markers carry a run id
(``FINEMED_RUN_ID``, else ``SLURM_JOB_ID``; a recipe with a stage spanning machines refuses to start without one)
and a marker of another run id is ignored; machine 0 clears the markers when it starts.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from finemed.core import stages
from finemed.core.artifacts import (
    StageOutcome,
    atomic_write_json,
    config_hash,
    input_fingerprints,
    read_json,
    read_manifest,
    to_jsonable,
)
from finemed.core.config import ConfigError, FinemedError, StageConfig, apply_overrides, read_yaml, validate
from finemed.core.launch import machine_rank
from finemed.core.logs import get_logger
from finemed.data.registry import cache_dir, data_dir_or_none
from finemed.models.registry import cached_path, is_registered
from finemed.orchestrate.rehearse import rehearse_config

log = get_logger(__name__)


class StageEntry(StageConfig):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    config: dict[str, Any] = {}
    rehearse: dict[str, Any] = {}  # dotted-key overrides applied by `finemed run --rehearse` (see rehearse.py)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in stages.discover():
            raise ValueError(stages.unknown_kind_message(v, quote_kind=False))
        return v


class Recipe(StageConfig):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    runs_dir: str = "runs"
    notes: list[str] = []  # printed after the run's summary table
    plan: dict[str, Any] = {}  # hints for `finemed plan`, e.g. {cpt: {tokens: 1.5e10}} where a size is unknown
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


_REF = re.compile(r"\$\{(stage:[A-Za-z0-9_.-]+|run:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|data|cache)\}")
RUNS_KEY = "run:"  # refs[RUNS_KEY]: this run's runs dir; refs["run-suffix"]: "-rehearsal" in a rehearsal


def _run_dir(key: str, refs: dict[str, str], where: str) -> str:
    """``run:RECIPE/STAGE`` -> RUNS/RECIPE[-rehearsal]/STAGE (the runs dir and kind of the run that reads it)."""
    if RUNS_KEY not in refs:
        raise ConfigError(f"{where}: ${{{key}}} names another recipe's run, which only a recipe can read; "
                          f"run this config inside a recipe (`finemed run`)")
    recipe, stage_name = key[len(RUNS_KEY):].split("/", 1)
    return str(Path(refs[RUNS_KEY]) / f"{recipe}{refs.get('run-suffix', '')}" / stage_name)


def _resolve(value: Any, refs: dict[str, str], where: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key.startswith(RUNS_KEY):
                return _run_dir(key, refs, where)
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


def resolve_env_refs(value: Any, where: str) -> Any:
    """``${cache}`` and ``${data}`` in a stage config outside a recipe (``-c`` files); ``${stage:...}`` is an error."""
    refs = {"cache": str(cache_dir())}
    data_dir = data_dir_or_none()
    if data_dir is not None:
        refs["data"] = str(data_dir)
    return _resolve(value, refs, where)


def path_inputs(value: Any, prefix: str = "") -> dict[str, str]:
    """Every string in the config that names an existing file or dir, or a fetched registered model."""
    found: dict[str, str] = {}
    if isinstance(value, str) and is_registered(value):
        path = cached_path(value)
        if path is not None:
            found[prefix or "value"] = str(path)
    elif isinstance(value, str) and value and ("/" in value or "." in value):
        try:
            if Path(value).expanduser().exists():
                found[prefix or "value"] = str(Path(value).expanduser())
        except OSError:
            pass
    elif isinstance(value, dict):
        for k, v in value.items():
            found.update(path_inputs(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.update(path_inputs(v, f"{prefix}[{i}]"))
    return found


def read_recipe_data(path: Path | str, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's mapping; one with ``base: OTHER.yaml`` (a path next to it) is that recipe with ``set:`` applied,
    ``{STAGE.KEY.SUB: value}`` (typed YAML values), and its own top-level keys (name, description, notes) on top.
    It changes stages only through ``set:``; a bad base or key is one line."""
    path = Path(path)
    data = read_yaml(path)
    base, sets = data.pop("base", None), data.pop("set", None) or {}
    if base is None:
        if sets:
            raise ConfigError(f"{path}: set: changes a base recipe; add base: OTHER.yaml or move the keys to stages:")
        return data
    base_path = (path.parent / str(base)).resolve()
    if base_path in _seen or base_path == path.resolve():
        raise ConfigError(f"{path}: base {base!r} leads back to itself; point base: at a recipe without this one")
    if not base_path.is_file():
        raise ConfigError(f"{path}: base {base!r} not found ({base_path}); name a recipe file relative to this one")
    if "stages" in data or not isinstance(sets, dict):
        raise ConfigError(f"{path}: a recipe with base: changes its stages through set: {{STAGE.KEY: value}} only")
    merged = read_recipe_data(base_path, (*_seen, path.resolve()))
    merged.update(data)
    entries = {s.get("name"): s for s in merged.get("stages", []) if isinstance(s, dict)}
    for key, value in sets.items():
        stage_name, _, rest = str(key).partition(".")
        if stage_name not in entries or not rest:
            raise ConfigError(f"{path}: set {key!r}: use STAGE.KEY with a stage of {base} "
                              f"({', '.join(n for n in entries if n)})")
        node = entries[stage_name].setdefault("config", {})
        *parents, leaf = rest.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{path}: set {key!r}: {part} is not a mapping in {base}")
        node[leaf] = value
    return merged


def load_recipe(path: Path | str, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe (:func:`read_recipe_data`: ``base:`` and ``set:`` applied); overrides address stages by name:
    ``--set bpb.batch_size=4`` or ``--set name=x``."""
    data = read_recipe_data(path)
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


def resolve_stages(recipe: Recipe, root: Path, source: str, *, rehearse: bool = False,
                   swaps: list[tuple[str, str, str, str]] | None = None) -> list[tuple[StageEntry, StageConfig]]:
    """Resolve ``${...}`` references and validate every stage's config, before anything runs.

    ``rehearse``: swap hub models, endpoints and remote data for local stand-ins and apply each stage's
    ``rehearse:`` overrides; the replacements are appended to ``swaps`` as (stage, key, old, new).
    """
    refs = {"cache": str(cache_dir()), RUNS_KEY: str(root.parent), "run-suffix": "-rehearsal" if rehearse else ""}
    data_dir = data_dir_or_none()
    if data_dir is not None:
        refs["data"] = str(data_dir)
    resolved = []
    for entry in recipe.stages:
        refs[f"stage:{entry.name}"] = str(root / entry.name)
        where = f"{source}: stages.{entry.name}.config"
        raw = _resolve(entry.config, refs, where)
        if rehearse:
            raw, changed = rehearse_config(entry.name, raw, entry.rehearse)
            if swaps is not None:
                swaps += [(entry.name, *c) for c in changed]
        resolved.append((entry, validate(stages.get(entry.kind).config, raw, where)))
    return resolved


def other_runs(recipe: Recipe) -> list[tuple[str, str, str]]:
    """Every ``${run:RECIPE/STAGE}`` a recipe reads: (reading stage, recipe, stage), in order, without repeats."""
    found: list[tuple[str, str, str]] = []
    for entry in recipe.stages:
        for _, value in config_strings(entry.config):
            for key in _REF.findall(value):
                item = (entry.name, *key[len(RUNS_KEY):].split("/", 1)) if key.startswith(RUNS_KEY) else None
                if item and item not in found:
                    found.append(item)
    return found


def require_other_runs(recipe: Recipe, root: Path, source: str, *, rehearse: bool = False,
                       only: list[str] | None = None) -> None:
    """One error line when a stage reads another recipe's stage that has not finished in this runs dir."""
    for reader, other, stage_name in other_runs(recipe):
        if only and reader not in only:
            continue
        other_dir = root.parent / (f"{other}-rehearsal" if rehearse else other) / stage_name
        manifest = read_manifest(other_dir)
        if manifest is None or manifest.status not in ("complete", "cached"):
            flags = (" --rehearse" if rehearse else "") + f" --runs-dir {root.parent}"
            raise ConfigError(f"{source}: stage {reader} reads ${{run:{other}/{stage_name}}}, but {other_dir} holds no "
                              f"finished run; run recipe {other} first (finemed run ...{other}.yaml{flags})")


def config_strings(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every string in a config with its dotted key: [("data.path", "..."), ...]."""
    if isinstance(value, str):
        return [(prefix, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in config_strings(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in config_strings(v, f"{prefix}[{i}]")]
    return []


def run_root(recipe: Recipe, runs_dir: Path | None = None, rehearse: bool = False) -> Path:
    return Path(runs_dir or recipe.runs_dir) / (f"{recipe.name}-rehearsal" if rehearse else recipe.name)


MARKERS = ".machines"
WAIT_POLL_S = 0.5


def spans_machines(cfg: StageConfig) -> bool:
    """A launched training stage that several machines join (``launch.machines > 1``)."""
    launch = getattr(cfg, "launch", None)
    return launch is not None and getattr(launch, "machines", 1) > 1


def _run_id() -> str:
    return os.environ.get("FINEMED_RUN_ID") or os.environ.get("SLURM_JOB_ID") or ""


def _mark(root: Path, name: str, status: str, cfg: StageConfig, error: str | None = None) -> None:
    atomic_write_json(root / MARKERS / f"{name}.json", {"stage": name, "status": status, "run_id": _run_id(),
                                                        "config_hash": config_hash(cfg), "error": error})


def wait_for_machine0(root: Path, name: str, cfg: StageConfig, *, statuses: tuple[str, ...],
                      timeout_s: float | None = None) -> str:
    """Block until machine 0's marker for stage ``name`` (this run id, this config) has one of ``statuses``."""
    path, t0, said = root / MARKERS / f"{name}.json", time.monotonic(), 0.0
    chash = config_hash(cfg)
    timeout_s = timeout_s if timeout_s is not None else float(os.environ.get("FINEMED_MACHINE_WAIT_S", 7 * 86400))
    while True:
        marker = read_json(path) if path.is_file() else None
        if marker and marker.get("run_id") == _run_id() and marker.get("config_hash") == chash:
            if marker["status"] == "failed":
                raise FinemedError(f"stage {name} failed on machine 0 ({marker.get('error')}); see its log")
            if marker["status"] in statuses:
                return marker["status"]
        waited = time.monotonic() - t0
        if waited > timeout_s:
            raise FinemedError(f"stage {name}: machine 0 left no marker in {path} after {waited:.0f} s; is machine 0 "
                               f"running the same recipe with the same --set options into the same run dir?")
        if waited - said >= 60:
            log.info("machine %d: waiting for machine 0 to finish stage %s (%.0f s)", machine_rank(), name, waited)
            said = waited
        time.sleep(WAIT_POLL_S)


def run_recipe(path: Path | str, overrides: list[str] | None = None, *, force: bool = False,
               only: list[str] | None = None, runs_dir: Path | None = None,
               rehearse: bool = False) -> list[StageOutcome]:
    """Run every stage of the recipe in order; return their outcomes and write ``summary.json``.

    ``rehearse``: run it on CPU with tiny stand-ins under ``RUNS/<name>-rehearsal``
    (see :mod:`finemed.orchestrate.rehearse`).
    """
    recipe = load_recipe(path, overrides)
    root = run_root(recipe, runs_dir, rehearse)
    # Validate every stage's config before running anything: a typo in stage 5 fails in a second.
    swaps: list[tuple[str, str, str, str]] = []
    plans = resolve_stages(recipe, root, str(path), rehearse=rehearse, swaps=swaps)
    require_other_runs(recipe, root, str(path), rehearse=rehearse, only=only)
    if rehearse:
        log.info("rehearsal of %s: %d replacements", recipe.name, len(swaps))
        for stage, key, old, new in swaps:
            log.info("  %s.%s: %s -> %s", stage, key, old, new)
    spanning = [entry.name for entry, cfg in plans if spans_machines(cfg) and (not only or entry.name in only)]
    if spanning and not _run_id():
        raise FinemedError(f"{recipe.name}: stage {spanning[0]} spans machines, and their markers need a run id: set "
                           f"FINEMED_RUN_ID to one new value per run, the same on every machine (under Slurm "
                           f"SLURM_JOB_ID serves)")
    outcomes: list[StageOutcome] = []
    summary_rows = []
    machine = machine_rank()
    if machine == 0:
        shutil.rmtree(root / MARKERS, ignore_errors=True)
    else:
        log.info("machine %d: joins the multi-machine training stages only; machine 0 runs the rest", machine)
    for entry, cfg in plans:
        if only and entry.name not in only:
            continue
        if machine != 0:
            outcome = _follow_machine0(entry, cfg, root)
            if outcome is not None:
                outcomes.append(outcome)
            continue
        outcome = _run_on_machine0(entry, cfg, root, force)
        outcomes.append(outcome)
        metric = stages.get(entry.kind).metric
        summary_rows.append({"stage": entry.name, "kind": entry.kind, "status": outcome.status,
                             "seconds": outcome.seconds, "metric": metric,
                             "value": stages.dig(outcome.result, metric), "result": outcome.result})
        atomic_write_json(root / "summary.json", {"recipe": recipe.name, "stages": summary_rows})
    return outcomes


def _run_on_machine0(entry: StageEntry, cfg: StageConfig, root: Path, force: bool) -> StageOutcome:
    """Run a stage and leave the markers the other machines wait for (before a multi-machine stage, and after)."""
    inputs = path_inputs(to_jsonable(cfg))
    if spans_machines(cfg):
        old, fps = read_manifest(root / entry.name), input_fingerprints(inputs)
        cached = (not force and old is not None and old.status in ("complete", "cached")
                  and old.config_hash == config_hash(cfg) and old.inputs == fps)
        if not cached:  # its launcher writes launch/config.json once its data are ready: the others wait for it
            (root / entry.name / "launch" / "config.json").unlink(missing_ok=True)
        _mark(root, entry.name, "cached" if cached else "launching", cfg)
    try:
        outcome = stages.run_stage(entry.kind, cfg, root / entry.name, name=entry.name, inputs=inputs, force=force)
    except BaseException as err:
        _mark(root, entry.name, "failed", cfg, str(err).splitlines()[0][:300] if str(err) else type(err).__name__)
        raise
    _mark(root, entry.name, outcome.status, cfg)
    return outcome


def _follow_machine0(entry: StageEntry, cfg: StageConfig, root: Path) -> StageOutcome | None:
    """Machine > 0: wait for machine 0's stage, or join a multi-machine stage it launches (its rank 0 writes)."""
    if not spans_machines(cfg):
        wait_for_machine0(root, entry.name, cfg, statuses=("complete", "cached"))
        return None
    if wait_for_machine0(root, entry.name, cfg, statuses=("launching", "cached")) == "cached":
        return None
    ready = root / entry.name / "launch" / "config.json"
    while not ready.is_file():  # machine 0 prepares the stage's data first (tokenised once, on a shared dir)
        wait_for_machine0(root, entry.name, cfg, statuses=("launching", "complete"))  # raises if it failed
        time.sleep(WAIT_POLL_S)
    t0 = time.perf_counter()
    log.info("machine %d: joining stage %s (%s)", machine_rank(), entry.name, entry.kind)
    result = stages.get(entry.kind).fn(cfg, root / entry.name)  # launches this machine's processes
    return StageOutcome(stage=entry.name, status="joined", seconds=round(time.perf_counter() - t0, 3),
                        result=to_jsonable(result))

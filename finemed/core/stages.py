"""The stage contract: a pydantic ``Config``, a pydantic ``Result`` and ``run(config, run_dir) -> Result``.

A stage registers itself in its own module::

    class GenerateConfig(StageConfig): ...
    class GenerateResult(StageResult):
        key_metric: ClassVar[str] = "n_answers"
        n_answers: int

    @stage("eval.generate")
    def run(cfg: GenerateConfig, run_dir: Path) -> GenerateResult: ...

The Config and Result classes are read from ``run``'s annotations, so nothing is written twice.

Discovery: :func:`discover` scans the finemed source tree for ``@stage("KIND")`` (and the ``finemed.core.stages``
entry-point group for stages that live in other packages), so the kind → module map is known without
importing torch; :func:`get` imports only the module a recipe needs, and a module that fails to import is an
error that names it. :func:`run_stage` is the one way a stage runs, for the CLI and the recipe runner alike:
cache check, manifest, ``metrics.json`` from the Result, and one log line when it starts and ends.
"""

from __future__ import annotations

import difflib
import importlib
import re
import time
import typing
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from finemed.core.artifacts import StageOutcome, atomic_write_json, config_hash, run_cached
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger

log = get_logger("finemed.core.stages")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINT_GROUP = "finemed.core.stages"
_DECORATOR = re.compile(r"""^@stage\(\s*["']([A-Za-z0-9_.]+)["']((?:\s*,\s*aliases=\[[^\]]*\])?)""", re.M)
_ALIAS = re.compile(r"""["']([A-Za-z0-9_.]+)["']""")


class StageResult(BaseModel):
    """Base of every stage result: what the runner writes to ``metrics.json`` and the manifest.

    ``key_metric`` is the dotted key the summary table shows (``""``: none).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    key_metric: ClassVar[str] = ""


@dataclass(frozen=True)
class StageDef:
    kind: str
    config: type[StageConfig]
    result: type[StageResult]
    fn: Callable[[Any, Path], StageResult]
    module: str

    @property
    def metric(self) -> str:
        return self.result.key_metric


_REGISTRY: dict[str, StageDef] = {}
_ALIASES: dict[str, str] = {}
_PLANNERS: dict[str, Callable[..., dict[str, Any]]] = {}


def stage(kind: str, *, aliases: list[str] | None = None) -> Callable:
    """Register ``run(config, run_dir) -> Result`` as stage ``kind``; Config and Result come from its annotations."""

    def deco(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn)
        params = [p for p in hints if p != "return"]
        cfg_cls, res_cls = hints.get(params[0]) if params else None, hints.get("return")
        if not (isinstance(cfg_cls, type) and issubclass(cfg_cls, StageConfig)):
            raise TypeError(f"stage {kind}: first parameter of {fn.__qualname__} must be annotated with a StageConfig")
        if not (isinstance(res_cls, type) and issubclass(res_cls, StageResult)):
            raise TypeError(f"stage {kind}: {fn.__qualname__} must be annotated to return a StageResult")
        _REGISTRY[kind] = StageDef(kind, cfg_cls, res_cls, fn, fn.__module__)
        for alias in aliases or []:
            _ALIASES[alias] = kind
        return fn

    return deco


def planner(kind: str) -> Callable:
    """Register ``estimate(config, ctx) -> dict`` for ``finemed plan``: what the stage will cost (tokens, FLOPs,
    GPU-hours, memory per process, disk, judge calls), without running it
    (``ctx``: a ``finemed.orchestrate.plan.PlanContext``)."""

    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        _PLANNERS[kind] = fn
        return fn

    return deco


def get_planner(kind: str) -> Callable[..., dict[str, Any]] | None:
    return _PLANNERS.get(get(kind).kind)


@lru_cache(maxsize=1)
def discover() -> dict[str, str]:
    """Every known stage kind (aliases included) → the module that registers it, without importing any."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "@stage(" not in text:
            continue
        module = ".".join(("finemed", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts))
        for match in _DECORATOR.finditer(text):
            found[match.group(1)] = module
            for alias in _ALIAS.findall(match.group(2)):
                found[alias] = module
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value.split(":")[0])
    return found


def known_kinds() -> list[str]:
    return sorted(discover())


def unknown_kind_message(kind: str, *, quote_kind: bool = True) -> str:
    """One short line for an unknown ``kind``: the closest registered kind (difflib's ratio >= 0.6) and where
    the full list is, instead of every kind on one line. ``quote_kind=False`` where the caller already shows it
    (pydantic's ``(got ...)``)."""
    close = difflib.get_close_matches(kind, known_kinds(), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "no registered kind is close;"
    return f"unknown stage kind{f' {kind!r}' if quote_kind else ''}; {hint} `finemed stages` lists every kind"


def get(kind: str) -> StageDef:
    """The registered stage ``kind``, importing its module on first use."""
    kind = _ALIASES.get(kind, kind)
    if kind not in _REGISTRY:
        module = discover().get(kind)
        if module is None:
            raise FinemedError(unknown_kind_message(kind))
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise FinemedError(f"stage kind {kind!r}: its module {module} failed to import "
                               f"({type(err).__name__}: {err}); reinstall with `make setup`") from None
        kind = _ALIASES.get(kind, kind)
        if kind not in _REGISTRY:
            raise FinemedError(f"stage kind {kind!r}: {module} imported but registered no such stage")
    return _REGISTRY[kind]


def dig(result: Any, dotted: str) -> Any:
    """``result[a][b]`` for ``dotted="a.b"``; None where a key is missing."""
    if not dotted:
        return None
    for part in dotted.split("."):
        if isinstance(result, dict) and part in result:
            result = result[part]
        else:
            return None
    return result


def run_stage(kind: str, config: StageConfig, run_dir: Path | str, *, name: str | None = None,
              inputs: dict[str, str] | None = None, force: bool = False) -> StageOutcome:
    """Run one stage with the cache: log its start and end, write ``manifest.json`` and ``metrics.json``."""
    sdef = get(kind)
    run_dir = Path(run_dir)
    name = name or run_dir.name
    log.info("stage %s (%s) starting, config %s", name, sdef.kind, config_hash(config))
    t0 = time.perf_counter()

    def call() -> StageResult:
        result = sdef.fn(config, run_dir)
        if not isinstance(result, sdef.result):
            raise TypeError(f"stage {sdef.kind} returned {type(result).__name__}, not {sdef.result.__name__}")
        atomic_write_json(run_dir / "metrics.json", result)
        return result

    try:
        outcome = run_cached(name, config, run_dir, call, inputs=inputs, kind=sdef.kind, force=force)
    except FinemedError:
        raise  # a user-facing error: the CLI prints its one line; the manifest keeps it
    except BaseException as err:
        log.error("stage %s (%s) failed after %.1f s: %s", name, sdef.kind, time.perf_counter() - t0,
                  str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise
    value = dig(outcome.result, sdef.metric)
    log.info("stage %s (%s) %s in %.1f s%s", name, sdef.kind, outcome.status, time.perf_counter() - t0,
             f", {sdef.metric}={value}" if sdef.metric else "")
    return outcome

"""What every stage command shares: ``-c CONFIG.yaml``, ``--set key=value``, ``--out DIR``, ``--force``, and
:func:`run_command`, which builds the stage's Config from those plus the command's few named flags and runs
it through :func:`finemed.core.stages.run_stage` (cache, manifest, ``metrics.json``, log lines).

Named flags default to None and are applied only when given, so every default lives in the Config alone.
Precedence: the Config's defaults < the YAML file < named flags < ``--set``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from finemed.core import stages
from finemed.core.artifacts import to_jsonable
from finemed.core.config import ConfigError, apply_overrides, read_yaml, validate
from finemed.orchestrate.recipe import path_inputs, resolve_env_refs

CONFIG = typer.Option(None, "--config", "-c", help="Stage config YAML (any key of the stage's Config)")
SET = typer.Option(None, "--set", help="Override a config key: key.sub=value (repeatable; wins over flags)")
OUT = typer.Option(..., "--out", help="Run dir: the stage's outputs, metrics.json and manifest.json")
FORCE = typer.Option(False, "--force", help="Run again even when OUT holds a complete run of the same config")


def set_dotted(data: dict, key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"option for {key!r}: {part} is not a mapping in the config")
        node = nxt
    node[parts[-1]] = value


def build_config(kind: str, config: Optional[Path], sets: Optional[list[str]], flags: dict[str, Any] | None = None):
    """The stage's validated Config from a YAML file, named flags (``None`` = not given) and ``--set``."""
    sdef = stages.get(kind)
    data = resolve_env_refs(read_yaml(config), str(config)) if config is not None else {}
    for key, value in (flags or {}).items():
        if value is not None:
            set_dotted(data, key, str(value) if isinstance(value, Path) else value)
    apply_overrides(data, sets, source="--set")
    return validate(sdef.config, data, str(config) if config is not None else f"finemed {kind}")


def run_command(kind: str, config: Optional[Path], sets: Optional[list[str]], out: Path,
                flags: dict[str, Any] | None = None, *, force: bool = False) -> dict:
    """Build the Config, run the stage into ``out`` (cached when unchanged) and return its result as a dict."""
    cfg = build_config(kind, config, sets, flags)
    outcome = stages.run_stage(kind, cfg, out, inputs=path_inputs(to_jsonable(cfg)), force=force)
    return outcome.result


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(to_jsonable(obj), indent=1, ensure_ascii=False))

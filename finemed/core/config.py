"""Typed configs: a pydantic base, YAML loading, ``--set a.b=c`` overrides and one-line errors.

Every stage defines ``class XConfig(StageConfig)``. Unknown keys are refused (``extra="forbid"``), so a
typo never passes silently. :func:`load_config` turns pydantic's multi-line errors into one line that
names the file, the key and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class FinemedError(Exception):
    """A user-facing error: one line saying what, where, and how to fix it. The CLI exits 2 on it."""


class ConfigError(FinemedError):
    """A bad config value, an unknown key, a bad override or a missing config file."""


class StageConfig(BaseModel):
    """Base of every stage config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


C = TypeVar("C", bound=BaseModel)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=c`` → (["a", "b"], yaml-parsed c). The value is read as YAML, so ``3``, ``true``, ``[1,2]`` work."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. --set train.lr=1e-4")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {item!r}: empty key; expected KEY=VALUE, e.g. --set train.lr=1e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict, overrides: list[str] | None, source: str = "--set") -> dict:
    """Apply ``a.b=c`` overrides to a nested dict in place (creating missing levels) and return it."""
    for item in overrides or []:
        parts, value = parse_override(item)
        node = data
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"{source} {item!r}: {'.'.join(parts[:-1])} is a {type(nxt).__name__}, not a mapping")
            node = nxt
        node[parts[-1]] = value
    return data


def read_yaml(path: Path | str) -> dict:
    """Read a YAML mapping, with one-line errors for a missing file, bad YAML or a non-mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(err, 'problem', err)}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level is a {type(data).__name__}, expected a mapping of keys")
    return data


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line: ``SOURCE: key a.b: <what was expected> (got <value>)`` for the first error, +N more."""
    errors = err.errors()
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = f"unknown key {key!r}; remove it or check the spelling"
    elif kind == "missing":
        msg = f"key {key!r} is required but missing"
    else:
        got = first.get("input")
        got_s = repr(got)
        if len(got_s) > 60:
            got_s = got_s[:57] + "..."
        msg = f"key {key!r}: {first['msg']} (got {got_s})"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {msg}{more}"


def validate(model: type[C], data: dict, source: str) -> C:
    """Validate ``data`` against ``model``; raise :class:`ConfigError` with a one-line message."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(model: type[C], path: Path | str | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> C:
    """Load ``model`` from an optional YAML file plus ``--set`` overrides (applied last)."""
    data = dict(base or {})
    if path is not None:
        data.update(read_yaml(path))
    apply_overrides(data, overrides)
    return validate(model, data, str(path) if path is not None else "config")

"""``finemed run RECIPE --rehearse``: the same recipe, end to end, on CPU in seconds per stage.

A real-scale recipe names hub models, hub data and judge endpoints that these machines cannot reach and whose
size no CPU can train. A rehearsal keeps every key, the stage chain, the launches and the cache behaviour, and
swaps only what cannot run here:

- a model id with a bundled architecture (``Qwen/Qwen2.5-7B-Instruct``, ``mistralai/...``, ``EleutherAI/pythia-*``)
  → a tiny random stand-in of the same class and vocabulary, with the family's real tokenizer
  (:func:`finemed.models.arch.tiny_standin`), built once under ``$FINEMED_CACHE/rehearsal/``;
- an OpenAI-compatible endpoint (``http(s)://HOST/v1#MODEL``) → ``local:`` + a tiny chat model;
- hub or object-store data (``hf:``, ``hf://``, ``s3://``, ``gs://``) → the bundled FineWeb2-schema dev input for a
  corpus ``input``, ``builtin:medical`` for any other text source;
- then each stage's own ``rehearse:`` mapping in the recipe (dotted keys, like ``--set``) shrinks steps and limits.

Every replacement is listed before the run starts, so a reader sees what was not exercised.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from finemed.config import apply_overrides
from finemed.corpus.sample_input import default_dev_input
from finemed.data.registry import cache_dir
from finemed.models import arch
from finemed.models.tiny import save_tiny

ENDPOINT = re.compile(r"^https?://[^\s#]+/v1(#.*)?$")
REMOTE_DATA = ("hf:", "hf://", "s3://", "gs://", "az://")
STANDIN = {"layers": 2, "hidden": 64, "heads": 4}


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "--", spec)


def standin_dir(spec: str) -> Path:
    """The tiny stand-in of a bundled architecture, built once."""
    out = cache_dir() / "rehearsal" / _slug(spec)
    if not (out / "config.json").is_file():
        arch.tiny_standin(spec, out, **STANDIN)
    return out


def tiny_chat_model() -> Path:
    out = cache_dir() / "rehearsal" / "tiny-chat"
    if not (out / "config.json").is_file():
        save_tiny(out)
    return out


def _swap(key: str, value: str) -> str | None:
    if value in arch.bundled():
        return str(standin_dir(value))
    if ENDPOINT.match(value):
        return f"local:{tiny_chat_model()}"
    if value.startswith(REMOTE_DATA):
        return str(default_dev_input()) if key.split(".")[-1] == "input" else "builtin:medical"
    return None


def substitute(config: Any, prefix: str = "") -> tuple[Any, list[tuple[str, str, str]]]:
    """The config with every unreachable model, endpoint and data source swapped; and the (key, old, new) list."""
    swaps: list[tuple[str, str, str]] = []
    if isinstance(config, str):
        new = _swap(prefix, config)
        if new is not None:
            swaps.append((prefix, config, new))
            return new, swaps
        return config, swaps
    if isinstance(config, dict):
        out = {}
        for k, v in config.items():
            out[k], more = substitute(v, f"{prefix}.{k}" if prefix else str(k))
            swaps += more
        return out, swaps
    if isinstance(config, list):
        items = []
        for i, v in enumerate(config):
            new, more = substitute(v, f"{prefix}[{i}]")
            items.append(new)
            swaps += more
        return items, swaps
    return config, swaps


def rehearse_config(stage: str, config: dict, overrides: dict[str, Any]) -> tuple[dict, list[tuple[str, str, str]]]:
    """One stage's rehearsal config: substitutions first, then the recipe's ``rehearse:`` overrides."""
    new, swaps = substitute(config)
    items = [f"{k}={_yaml(v)}" for k, v in overrides.items()]
    apply_overrides(new, items, source=f"stages.{stage}.rehearse")
    swaps += [(k, "(recipe value)", _yaml(v)) for k, v in overrides.items()]
    return new, swaps


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

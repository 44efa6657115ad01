"""The corpus blocks by name: what a build config's ``pipeline.steps`` list can name.

A block is a datatrove step class (usually a ``BaseFilter`` subclass) or a factory, registered with
``@block("name")``::

    @block("no_lorem")
    class NoLorem(BaseFilter):
        name = "🚫 no lorem ipsum"

        def filter(self, doc):
            return "lorem ipsum" not in doc.text.lower() or (False, "lorem_ipsum")

A class is built as ``cls(**params, exclusion_writer=...)`` (``params`` from ``- no_lorem: {...}`` in
``steps:``); a factory is called as ``factory(ctx, **params)`` with a :class:`BlockContext` and returns a
step, a list of steps, or None (switched off by its config section).

Discovery follows :mod:`finemed.core.stages`: the corpus package's own blocks are found by scanning its source
for ``@block("NAME")`` and imported on first use, so configs validate without importing datatrove. Blocks
in other modules register when those are imported: list them under ``pipeline.imports``. ``minhash`` is a
reserved step name, not a block (see :mod:`finemed.corpus.chain`).
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from finemed.core.config import ConfigError

PACKAGE = Path(__file__).resolve().parent
MINHASH = "minhash"  # the split point of the chain: steps before it run before MinHash dedup, the rest after
_DECORATOR = re.compile(r"""^@block\(\s*["']([A-Za-z0-9_.-]+)["']\s*\)""", re.M)
_BLOCKS: dict[str, Any] = {}


@dataclass
class BlockContext:
    """What a block factory may use: the pipeline config, the run dir, the classifier, a drop-sample writer."""

    pipeline: Any  # the PipelineConfig
    run_dir: Path
    classifier: Callable[[], tuple[str, float]]  # () -> (classifier dir, keep threshold); resolved on first call
    exclusion_writer: Callable[[str], Any]  # step name -> a writer that keeps a few dropped docs per reason


def block(name: str) -> Callable:
    """Register a datatrove step class or a ``factory(ctx, **params)`` as corpus step ``name``."""

    def deco(obj: Any) -> Any:
        if name == MINHASH:
            raise ValueError(f"corpus step name {MINHASH!r} is reserved for MinHash dedup")
        _BLOCKS[name] = obj
        return obj

    return deco


@lru_cache(maxsize=1)
def discover() -> dict[str, str]:
    """The corpus package's block names → the module that registers each, without importing any."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in _DECORATOR.finditer(text):
            found[match.group(1)] = f"finemed.corpus.{path.stem}"
    return found


def known() -> list[str]:
    return sorted({*discover(), *_BLOCKS, MINHASH})


def heavy(module: str) -> ModuleType:
    """``finemed.corpus.<module>``, imported on first use: the datatrove/torch side of the corpus package.

    Stage modules reach datatrove steps and torch models only through here (or :func:`get`), so a recipe
    validates without importing either.
    """
    return importlib.import_module(f"finemed.corpus.{module}")


def get(name: str) -> Any:
    """The registered block ``name``, importing its module on first use."""
    if name not in _BLOCKS and name in discover():
        importlib.import_module(discover()[name])
    if name not in _BLOCKS:
        raise ConfigError(f"unknown corpus step {name!r}; known steps: {', '.join(known())}")
    return _BLOCKS[name]


def import_modules(modules: list[str]) -> None:
    """Import the modules that register user blocks (``pipeline.imports``)."""
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError as err:
            raise ConfigError(f"pipeline.imports: cannot import {mod!r} ({err}); put it on PYTHONPATH") from None


def parse_step(item: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``{"name": {params}}`` → (name, params)."""
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict) and len(item) == 1:
        name, params = next(iter(item.items()))
        if isinstance(params, dict) or params is None:
            return str(name), dict(params or {})
    raise ConfigError(f"corpus step {item!r}: write a name or {{name: {{param: value}}}}")


def build(name: str, params: dict[str, Any], ctx: BlockContext) -> list:
    """The datatrove steps of block ``name`` (empty when its config section switches it off)."""
    obj = get(name)
    if inspect.isclass(obj):
        kwargs = dict(params)
        if "exclusion_writer" in inspect.signature(obj.__init__).parameters:
            kwargs.setdefault("exclusion_writer", ctx.exclusion_writer(name))
        return [obj(**kwargs)]
    made = obj(ctx, **params)
    if made is None:
        return []
    return list(made) if isinstance(made, (list, tuple)) else [made]


def section(model: Any, params: dict[str, Any]) -> Any:
    """A config section with a step's ``params`` applied on top (validated)."""
    return type(model).model_validate({**model.model_dump(), **params}) if params else model

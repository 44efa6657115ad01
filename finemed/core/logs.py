"""Say what is happening: Python logging through a rich handler, and one progress-bar helper with an ETA.

Every module logs with ``get_logger(__name__)``; the CLI calls :func:`setup_logging` once. Every loop a
person waits for goes through :func:`progress` (a rich bar with elapsed time and ETA, on stderr), so the
look and the on/off switch (``FINEMED_PROGRESS=0``) live here only. The HF Trainer keeps its own tqdm bar.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_CONFIGURED = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def setup_logging(level: int | str | None = None) -> None:
    """Route finemed's loggers to a rich handler on stderr (idempotent). ``FINEMED_LOG_LEVEL`` sets the level."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False,
                          log_time_format="[%H:%M:%S]")
    root = logging.getLogger("finemed")
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("FINEMED_LOG_LEVEL", "INFO"))
    root.propagate = False
    _CONFIGURED = True


def progress_enabled() -> bool:
    """Bars show on a terminal; ``FINEMED_PROGRESS=1`` forces them into a log file, ``0`` turns them off."""
    flag = os.environ.get("FINEMED_PROGRESS")
    return flag == "1" if flag is not None else sys.stderr.isatty()


def progress(items: Iterable[T], description: str, total: int | None = None, *, enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while showing a bar with count, elapsed time and ETA on stderr."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Counter(description, total, enabled=enabled) as bar:
        for item in items:
            yield item
            bar.advance()


class Counter:
    """A bar advanced by hand (``advance(n)``), for loops that do work in uneven chunks."""

    def __init__(self, description: str, total: int | None, *, enabled: bool = True):
        self._bar = None
        if enabled and progress_enabled():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=False)
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> "Counter":
        if self._bar is not None:
            self._bar.start()
        return self

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

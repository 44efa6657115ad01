"""The one way finemed draws a figure: matplotlib on the Agg backend, imported on first use (configs and stage
modules stay light), and PNGs written atomically."""

from __future__ import annotations

from pathlib import Path

from finemed.core.artifacts import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path | str, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG atomically (tmp file, then rename), close it, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path

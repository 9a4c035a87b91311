"""Figures without pyplot: no backend switch, no global figure list, safe in a notebook or
a thread (every plot of the package is made here and written atomically)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .files import atomic_path


def figure(
    figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, squeeze: bool = True
) -> tuple[Any, Any]:
    """A figure drawn by the Agg canvas and its axes (as ``plt.subplots`` returns them),
    touching none of matplotlib's process-wide state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """``fig`` as an image at ``path`` (format from the suffix), atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return Path(path)


__all__ = ["figure", "save_figure"]

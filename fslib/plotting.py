"""One figure style for the library, the command line and the book."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

from ._io import atomic_write


def set_style() -> None:
    """Apply the seaborn theme and the figure defaults used everywhere in fslib."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "image.cmap": "viridis",
        "axes.titlesize": "medium",
    })


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically; the format follows the suffix."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    with atomic_write(path) as handle:
        fig.savefig(handle, format=fmt, **kwargs)
    return path

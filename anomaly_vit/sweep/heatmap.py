"""A two-key sweep as a grid: the metric's mean over seeds per (row value, column value)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from anomaly_vit.rundir import atomic_write

Cell = tuple[float, float, int]  # mean, standard deviation, finished jobs


def plot_heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Sequence[Sequence[Cell]],
    path: str | Path,
    row_label: str,
    column_label: str,
    title: str,
) -> Path:
    """Colour each cell by its mean and write mean ± std (n) in it; empty cells stay blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    means = np.array([[c[0] if c[2] else math.nan for c in row] for row in cells], dtype=float)
    # a column is as wide as its label (about 0.085 in a character at the tick font size)
    column_width = max([1.4] + [0.085 * len(str(c)) for c in columns])
    width = max(4.8, column_width * len(columns) + 2.0)
    fig, ax = plt.subplots(figsize=(width, 1.0 * len(rows) + 1.8), constrained_layout=True)
    image = ax.imshow(np.ma.masked_invalid(means), cmap="viridis", aspect="auto")
    for i, row in enumerate(cells):
        for j, (mean, std, n) in enumerate(row):
            if n:
                text = f"{mean:.3f}" + (f"\n± {std:.3f}" if n > 1 else "") + f"\nn={n}"
                light = image.norm(mean) > 0.6  # viridis turns yellow: dark text there
                colour = "black" if light else "white"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(len(columns)), [str(c) for c in columns])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel(column_label)
    ax.set_ylabel(row_label)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax)
    try:
        return atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    finally:
        plt.close(fig)

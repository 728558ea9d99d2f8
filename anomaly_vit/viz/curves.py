"""Training curves: loss and accuracy against the global epoch, a lineage's epochs drawn in grey."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from anomaly_vit.rundir import atomic_write  # noqa: E402

PANELS = (
    ("loss", ("train/loss", "val/loss")),
    ("accuracy", ("train/acc", "val/acc", "val/balanced_acc")),
)


def plot_curves(
    rows: list[dict[str, float]], path: str | Path, parent_rows: Sequence[dict[str, float]] = ()
) -> Path:
    """Plot loss and accuracy against the global epoch; `parent_rows` (a lineage) drawn in grey."""
    fig, axes = plt.subplots(
        1, len(PANELS), figsize=(5 * len(PANELS), 3.6), constrained_layout=True
    )
    for ax, (title, keys) in zip(axes, PANELS, strict=True):
        for key in keys:
            for data, style in ((parent_rows, {"color": "0.7"}), (rows, {})):
                points = [
                    (r["epoch"], r[key]) for r in data if not math.isnan(r.get(key, math.nan))
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
                    label = None if style else key
                    ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=label, **style)
        ax.set_title(title)
        ax.set_xlabel("epoch (global)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    try:
        return atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=90))
    finally:
        plt.close(fig)

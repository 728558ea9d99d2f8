"""The sweep plot: a metric against a swept value, mean ± std per line, single jobs as dots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anomaly_vit.rundir import atomic_write

MAX_LINES = 8  # more series than this are drawn as points coloured by order, not as lines


@dataclass
class SweepSeries:
    """One line of the plot: its single jobs as (x, value) and the mean ± std per x."""

    label: str | None
    points: list[tuple[float, float]]
    xs: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)


def plot_sweep(
    series: Sequence[SweepSeries],
    path: str | Path,
    x_label: str,
    y_label: str,
    title: str,
    categories: Sequence[str] = (),
) -> Path:
    """Draw `series` (faint dots and error-bar lines; dots only beyond `MAX_LINES` series) and
    write the PNG atomically. `categories` name the x positions 0, 1, ... of a non-numeric x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = len(series) > MAX_LINES
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    cmap = plt.get_cmap("viridis" if many else "tab10")
    for index, line in enumerate(series):
        color = cmap(index / max(1, len(series) - 1)) if many else cmap(index % 10)
        if line.points:
            ax.scatter(*zip(*line.points, strict=True), color=color, alpha=0.35, s=14)
        if not many and line.xs:
            style = {"color": color, "marker": "o", "capsize": 4, "label": line.label}
            ax.errorbar(line.xs, line.means, yerr=line.stds, **style)
    if categories:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if not many and any(line.label for line in series):
        ax.legend(fontsize=8)
    try:
        return atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    finally:
        plt.close(fig)

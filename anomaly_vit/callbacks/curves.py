"""Redraw curves.png (loss and accuracy, train and val) from metrics.csv after each epoch."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from anomaly_vit.rundir import (  # noqa: E402
    CURVES_PNG,
    METRICS_CSV,
    atomic_write,
    lineage_rows,
    read_metrics_csv,
)

PANELS = (
    ("loss", ("train/loss", "val/loss")),
    ("accuracy", ("train/acc", "val/acc", "val/balanced_acc")),
)


def plot_curves(
    rows: list[dict[str, float]], path: str | Path, parent_rows: list[dict[str, float]] = ()
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


class CurvesPlotter(L.Callback):
    """Redraw `curves.png` in the run dir every `every_n_epochs` and at the end (rank 0 only)."""

    def __init__(
        self,
        filename: str = CURVES_PNG,
        every_n_epochs: int = 1,
        metrics_file: str = METRICS_CSV,
    ) -> None:
        if every_n_epochs <= 0:
            raise ValueError(f"callbacks.curves.every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.filename = filename
        self.every_n_epochs = every_n_epochs
        self.metrics_file = metrics_file

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        root = Path(trainer.default_root_dir)
        rows = read_metrics_csv(root / self.metrics_file)
        parent_rows = lineage_rows(getattr(pl_module, "lineage", []), self.metrics_file)
        if rows or parent_rows:
            plot_curves(rows, root / self.filename, parent_rows)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            trainer.is_global_zero
            and not trainer.sanity_checking
            and pl_module.global_epoch % self.every_n_epochs == 0
        ):
            self._draw(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._draw(trainer, pl_module)

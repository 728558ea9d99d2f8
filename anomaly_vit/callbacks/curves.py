"""Redraw curves.png (loss and accuracy, train and val) from metrics.csv after each epoch."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from anomaly_vit.errors import ConfigError
from anomaly_vit.rundir import CURVES_PNG, METRICS_CSV, lineage_rows, read_metrics_csv
from anomaly_vit.viz.curves import plot_curves


class CurvesPlotter(L.Callback):
    """Redraw `curves.png` in the run dir every `every_n_epochs` and at the end (rank 0 only)."""

    def __init__(
        self,
        filename: str = CURVES_PNG,
        every_n_epochs: int = 1,
        metrics_file: str = METRICS_CSV,
    ) -> None:
        if every_n_epochs <= 0:
            raise ConfigError(
                f"callbacks.curves.every_n_epochs must be >= 1, got {every_n_epochs}."
            )
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

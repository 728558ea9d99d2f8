"""Write one row per epoch to metrics.csv and TensorBoard, on the global-epoch axis."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only


def read_metrics_csv(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats (empty cells become NaN)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [
            {k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def write_metrics_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows atomically; columns are `epoch` first, then the sorted union of keys."""
    path = Path(path)
    keys = sorted({k for row in rows for k in row} - {"epoch"})
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", *keys], restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (int(v) if k == "epoch" else v) for k, v in row.items()})
    tmp.replace(path)


class EpochMetricsWriter(L.Callback):
    """After each training epoch (validation has run), append train/val metrics to metrics.csv
    and log them to every logger with `step = global epoch`, so continued runs extend the curves.

    Other callbacks may add scalars for the current epoch with `add_scalars` before the row is
    written (callbacks run in list order). Rows after the starting epoch are dropped when a run
    resumes or fine-tunes into the same folder, so the file never holds a duplicate epoch.
    """

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename
        self.pending: dict[str, float] = {}

    def path(self, trainer: L.Trainer) -> Path:
        return Path(trainer.default_root_dir) / self.filename

    def add_scalars(self, scalars: dict[str, float]) -> None:
        self.pending.update(scalars)

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        start_epoch = pl_module.global_epoch - 1
        rows = read_metrics_csv(self.path(trainer))
        kept = [row for row in rows if row["epoch"] <= start_epoch]
        if len(kept) != len(rows):
            write_metrics_csv(self.path(trainer), kept)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row: dict[str, float] = pl_module.train_epoch_metrics()  # all ranks: it synchronises
        row |= {k: v for k, v in pl_module.epoch_metrics.items() if not isinstance(v, list)}
        row |= self.pending
        self.pending = {}
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = pl_module.global_epoch
        rows = [r for r in read_metrics_csv(self.path(trainer)) if r["epoch"] < epoch]
        write_metrics_csv(self.path(trainer), [*rows, {"epoch": epoch, **row}])
        finite = {k: v for k, v in row.items() if isinstance(v, float) and math.isfinite(v)}
        for logger in trainer.loggers:
            logger.log_metrics(finite, step=epoch)

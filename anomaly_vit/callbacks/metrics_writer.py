"""Write one row per epoch to metrics.csv and TensorBoard, on the global-epoch axis."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from anomaly_vit.errors import ConfigError
from anomaly_vit.rundir import METRICS_CSV, read_metrics_csv, write_dict_rows

log = logging.getLogger(__name__)


def write_metrics_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows atomically; columns are `epoch` first, then the sorted union of keys."""
    keys = sorted({k for row in rows for k in row} - {"epoch"})
    write_dict_rows(
        path,
        ["epoch", *keys],
        [{k: (int(v) if k == "epoch" else v) for k, v in r.items()} for r in rows],
    )


def purge_tensorboard_from(logger: object, step: int) -> None:
    """Hide TensorBoard points at `step` and later left by an earlier, longer run in this folder.

    Writes the marker `SummaryWriter(purge_step=step)` writes (a SessionLog START at `step`):
    TensorBoard drops older events with step >= `step`, so a run resumed from an earlier
    checkpoint shows one curve, not two overlapping ones. No-op for other loggers.
    """
    writer = getattr(getattr(logger, "experiment", None), "file_writer", None)
    if writer is None or not hasattr(writer, "add_event"):
        return
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog

    writer.add_event(Event(step=step, session_log=SessionLog(status=SessionLog.START)))


class EpochMetricsWriter(L.Callback):
    """After each training epoch (validation has run), append train/val metrics to metrics.csv
    and log them to every logger with `step = global epoch`, so continued runs extend the curves.

    Other callbacks may add scalars for the current epoch with `add_scalars` before the row is
    written (callbacks run in list order). Rows after the starting epoch are dropped when a run
    resumes or fine-tunes into the same folder, so the file never holds a duplicate epoch.

    TensorBoard also gets the validation confusion matrix as the image `val/confusion` (counts,
    row-normalised colour) at every `confusion_every_n_epochs`-th global epoch that validated
    and at the last one (0: never). Drawing it (PIL) takes ~3 ms (`confusion_seconds`).
    """

    def __init__(self, filename: str = METRICS_CSV, confusion_every_n_epochs: int = 1) -> None:
        if int(confusion_every_n_epochs) < 0:
            raise ConfigError(
                "callbacks.metrics_writer.confusion_every_n_epochs must be >= 0 (0: never), "
                f"got {confusion_every_n_epochs}."
            )
        self.filename = filename
        self.confusion_every_n_epochs = int(confusion_every_n_epochs)
        self.confusion_seconds: dict[int, float] = {}  # drawing time per global epoch
        self.pending: dict[str, float] = {}
        self._last_eval: object = None  # the epoch_metrics dict seen last: a new one = validated

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
        if start_epoch > 0:
            for logger in trainer.loggers:
                purge_tensorboard_from(logger, start_epoch + 1)

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
        validated = pl_module.epoch_metrics is not self._last_eval  # False: no validation ran
        self._last_eval = pl_module.epoch_metrics
        if validated:
            self._log_confusion(trainer, pl_module, epoch)
        for logger in trainer.loggers:
            logger.log_metrics(finite, step=epoch)
            logger.save()  # flush: a killed run keeps every finished epoch, as in metrics.csv

    def _log_confusion(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        """Add `val/confusion` (HxWx3) to the TensorBoard loggers when this epoch is due."""
        matrix = pl_module.epoch_metrics.get("val/confusion")
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        every = self.confusion_every_n_epochs
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        is_last = trainer.should_stop or (
            max_epochs is not None and pl_module.current_epoch + 1 >= max_epochs
        )
        if not matrix or not loggers or not every or not (is_last or epoch % every == 0):
            return
        from anomaly_vit.viz.confusion import confusion_rgb

        start = time.perf_counter()
        rgb = confusion_rgb(matrix, list(pl_module.classes), f"validation, global epoch {epoch}")
        self.confusion_seconds[epoch] = time.perf_counter() - start
        log.debug("val/confusion drawn in %.3f s", self.confusion_seconds[epoch])
        for logger in loggers:
            logger.experiment.add_image("val/confusion", rgb, global_step=epoch, dataformats="HWC")

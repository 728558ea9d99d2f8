"""Lightning callbacks the tests add to a training run by Hydra target string
(`+callbacks.<name>._target_=tests.helpers.callbacks.<Class>`): kill, pause, record."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L

DRAWS = "draws"  # folder of RecordDraws' files in the run dir


class KillAfterEpoch(L.Callback):
    """Test helper: end the process like a kill once `epoch` epochs are trained and saved.

    With `wait_for_writer` the background checkpoint writer is let finish first; without it the
    process dies at once, while the last epoch's checkpoint may still be in the writer's hands."""

    def __init__(self, epoch: int, wait_for_writer: bool = True) -> None:
        self.epoch = epoch
        self.wait_for_writer = wait_for_writer

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            if self.wait_for_writer:
                trainer.strategy.checkpoint_io.teardown()
            os._exit(17)


class PauseMidEpoch(L.Callback):
    """Test helper: at `batch` of GLOBAL epoch `epoch`, write `marker` and wait to be killed."""

    def __init__(self, marker: str, epoch: int, batch: int = 1, wait_s: float = 600.0) -> None:
        self.marker, self.epoch, self.batch, self.wait_s = Path(marker), epoch, batch, wait_s

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.global_epoch == self.epoch and batch_idx == self.batch:
            self.marker.write_text(str(os.getpid()))
            time.sleep(self.wait_s)


class RecordDraws(L.Callback):
    """Test helper: every rank writes the (dataset index, source id) of each training sample it
    got, per epoch, to <run dir>/draws/rank<r>_epoch<e>.json."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.drawn: list[tuple[int, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.drawn += list(zip(batch["index"].tolist(), batch["source"].tolist(), strict=True))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        folder = Path(trainer.default_root_dir) / DRAWS
        folder.mkdir(exist_ok=True)
        name = f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        (folder / name).write_text(json.dumps(self.drawn))

"""A Ctrl-C at a chosen step: a callback tests add to runs by Hydra target."""

from __future__ import annotations

import lightning as L


class InterruptAt(L.Callback):
    """Raise KeyboardInterrupt (a Ctrl-C) at `batch` of GLOBAL epoch `epoch`."""

    def __init__(self, epoch: int, batch: int = 0) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.global_epoch == self.epoch and batch_idx == self.batch:
            raise KeyboardInterrupt

"""`ModelCheckpoint` whose `every_n_epochs` counts GLOBAL epochs, and last.ckpt every epoch."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from anomaly_vit.errors import ConfigError


class GlobalEpochCheckpoint(ModelCheckpoint):
    """Save `epoch_XXXX.ckpt` when the GLOBAL epoch is a multiple of `every_n_epochs`.

    Lightning counts this run's epochs, so a fine-tune from epoch 205 with `every_n_epochs=10`
    would save 215, 225, ...; this saves 210, 220, ... like the parent. `last.ckpt` (with
    `save_last`) is refreshed after every epoch, so a resume loses at most one epoch. Saving
    happens at the end of the training epoch, after validation.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("save_on_train_epoch_end", True)
        if not kwargs["save_on_train_epoch_end"]:
            raise ConfigError(
                "callbacks.checkpoint_periodic.save_on_train_epoch_end must be true: "
                "GlobalEpochCheckpoint saves at the end of each training epoch."
            )
        super().__init__(*args, **kwargs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        epoch = getattr(pl_module, "global_epoch", trainer.current_epoch + 1)
        if self._every_n_epochs >= 1 and epoch % self._every_n_epochs == 0:
            self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

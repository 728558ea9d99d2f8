"""A progress bar that counts global epochs, as metrics.csv, checkpoints and TensorBoard do."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf


class GlobalEpochProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar labelled `Epoch <global>/<last global>`: a fine-tune of a 200-epoch
    run shows `Epoch 201/300`, not `Epoch 0`."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning's own body with our label: calling it first would print "Epoch 0" into logs
        if getattr(self, "_leave", False):
            self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset()
        self.train_progress_bar.total = convert_inf(self.total_train_batches)
        self.train_progress_bar.initial = 0
        self.train_progress_bar.set_description(epoch_label(trainer, pl_module))


def epoch_label(trainer: L.Trainer, pl_module: L.LightningModule) -> str:
    """`Epoch <global>/<last>` (`Epoch <global>` when the run has no epoch limit)."""
    epoch = getattr(pl_module, "global_epoch", trainer.current_epoch + 1)
    offset = getattr(pl_module, "epoch_offset", 0)
    max_epochs = trainer.max_epochs
    return (
        f"Epoch {epoch}/{offset + max_epochs}"
        if max_epochs and max_epochs > 0
        else f"Epoch {epoch}"
    )

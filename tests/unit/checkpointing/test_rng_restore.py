"""`RNGStateCheckpoint`: a fit resumed from a checkpoint draws exactly the random numbers an
uninterrupted fit draws, whatever the process's RNG was when it resumed (fast, a toy module)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from anomaly_vit.checkpointing.rng_state import RNGStateCheckpoint


class Draws(L.LightningModule):
    """One weight; each training step draws a random number and records it per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.draws: dict[int, list[float]] = {}

    def training_step(self, batch, batch_idx):
        self.draws.setdefault(self.current_epoch, []).append(float(torch.rand(1)))
        return (self.weight * batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path, max_epochs: int, ckpt_path=None) -> Draws:
    model = Draws()
    trainer = L.Trainer(
        max_epochs=max_epochs, callbacks=[RNGStateCheckpoint()], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, num_sanity_val_steps=0,
    )  # fmt: skip
    loader = DataLoader(TensorDataset(torch.ones(3, 1)), batch_size=1)
    trainer.fit(model, loader, ckpt_path=ckpt_path, weights_only=True)
    if ckpt_path is None:
        trainer.save_checkpoint(tmp_path / f"epoch{max_epochs}.ckpt")
    return model


def test_a_resumed_fit_draws_what_an_uninterrupted_fit_draws(tmp_path) -> None:
    torch.manual_seed(0)
    whole = _fit(tmp_path, max_epochs=2)
    torch.manual_seed(0)
    _fit(tmp_path, max_epochs=1)
    torch.manual_seed(123)  # the resuming process starts from another RNG state
    resumed = _fit(tmp_path, max_epochs=2, ckpt_path=tmp_path / "epoch1.ckpt")
    assert list(resumed.draws) == [1] and len(whole.draws[1]) == 3
    assert resumed.draws[1] == whole.draws[1]


def test_every_training_checkpoint_carries_the_rng_states(smoke_run) -> None:
    checkpoint = torch.load(smoke_run / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = [s for k, s in checkpoint["callbacks"].items() if k == "RNGStateCheckpoint"]
    assert {"torch", "numpy", "python"} <= set(state["rng_states"])

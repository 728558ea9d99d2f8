"""The Lightning fixes the project relies on (pyproject.toml pins `lightning>=2.6.1`), checked
on the installed version: an upgrade or downgrade that loses one fails here, by name."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO

from anomaly_vit.data.sampler import MixSampler


def test_distributed_wrapper_forwards_set_epoch_to_the_mix_sampler():
    """2.6.1 (#21454): under DDP Lightning wraps our sampler; without the forwarding every
    epoch would draw the mix of epoch 0."""
    sampler = MixSampler({"real": list(range(10)), "painted": list(range(10, 20))},
                         {"real": 1.0, "painted": 1.0}, samples_per_epoch=12, seed=3)  # fmt: skip
    wrapper = DistributedSamplerWrapper(sampler, num_replicas=2, rank=0, shuffle=False)
    first = list(wrapper)
    wrapper.set_epoch(1)
    assert sampler.epoch == 1
    assert list(wrapper) != first and len(list(wrapper)) == 6


class _SlowWriter(TorchCheckpointIO):
    """Writes only once the test lets it, so the caller can change the tensors meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        assert self.go.wait(10)
        super().save_checkpoint(checkpoint, path, storage_options)


def test_background_checkpoint_writes_the_tensors_as_they_were_at_the_save(tmp_path: Path):
    """2.5.4 (#21079): the optimizer step after a save must not leak into the file."""
    weight = torch.zeros(4)
    inner = _SlowWriter()
    io = AsyncCheckpointIO(inner)
    io.save_checkpoint({"state_dict": {"w": weight}}, tmp_path / "a.ckpt")
    weight.add_(1.0)  # training goes on while the file is being written
    inner.go.set()
    io.teardown()
    saved = torch.load(tmp_path / "a.ckpt", weights_only=True)["state_dict"]["w"]
    assert torch.equal(saved, torch.zeros(4))

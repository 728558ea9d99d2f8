"""The plain PyTorch loop the pipeline is measured against, on the pipeline's own batches."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F


class PlainLoop:
    """The reference: the same model config, batches and optimizer family, no framework."""

    def __init__(
        self,
        module: torch.nn.Module,
        batches: list[tuple[torch.Tensor, torch.Tensor]],
        lr: float,
        weight_decay: float,
        label_smoothing: float = 0.0,
    ) -> None:
        self.module = module.train()
        self.batches = batches
        self.label_smoothing = float(label_smoothing)
        self.optimizer = torch.optim.AdamW(
            module.net.parameters(), lr=lr, weight_decay=weight_decay
        )

    @property
    def images_per_epoch(self) -> int:
        return sum(len(labels) for _, labels in self.batches)

    def step(self, images_u8: torch.Tensor, labels: torch.Tensor) -> None:
        logits = self.module.net(self.module.normalize(images_u8))
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def run(self, steps: int | None = None) -> float:
        """Run `steps` batches (default: one epoch); return the seconds it took."""
        batches = (
            self.batches
            if steps is None
            else [self.batches[i % len(self.batches)] for i in range(steps)]
        )
        start = time.perf_counter()
        for images, labels in batches:
            self.step(images, labels)
        return time.perf_counter() - start


def plain_batches(datamodule: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of training batches as the pipeline draws them (its sampler, its batch size),
    gathered up front from the decoded uint8 images, without augmentation."""
    dataset = datamodule.datasets["train"]
    order = list(datamodule.train_sampler())
    size = int(datamodule.batch_size)
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    return [
        (dataset.images_nchw[chunk].contiguous(), dataset.labels[chunk].clone()) for chunk in chunks
    ]

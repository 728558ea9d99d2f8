"""Pretraining data: the training images of every configured source, plus an unlabelled folder.

`PretrainData` wraps the run's `MixedDataModule`: training batches follow its mix (every source
at its weight, no class balancing; never a validation or test item) and carry images only, so
no label reaches the objective. `pretrain.unlabelled_dir` adds every image file under a folder,
each seen once per epoch. Validation images are read only to measure the held-out loss and to
draw the attention probes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from anomaly_vit.data.image_io import is_image_file, load_rgb
from anomaly_vit.data.resize import ResizeMode, fit_image
from anomaly_vit.data.sampler import MixSampler
from anomaly_vit.errors import DataError, MissingFileError

log = logging.getLogger(__name__)


class ImagesOnly(Dataset):
    """`{"image": uint8 [3, H, W]}` items of a uint8 NCHW tensor (no label, ever)."""

    def __init__(self, images_nchw: torch.Tensor) -> None:
        self.images_nchw = images_nchw

    def __len__(self) -> int:
        return len(self.images_nchw)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images_nchw[index]}


def load_unlabelled(
    folder: str | Path, input_hw: tuple[int, int], resize: ResizeMode
) -> ImagesOnly:
    """Every image file under `folder` (recursively), fitted to `input_hw`; bad files skipped."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise MissingFileError(
            f"pretrain.unlabelled_dir={folder} is not a folder: set it to a folder of images or null."
        )
    images, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p)):
        try:
            images.append(fit_image(load_rgb(path), input_hw, resize))
        except ValueError as error:  # BadImageError: a named file and its reason
            skipped.append(f"{path}: {error}")
    for line in skipped:
        log.warning("pretrain.unlabelled_dir: skipped %s", line)
    if not images:
        raise DataError(f"pretrain.unlabelled_dir={folder} holds no readable image files.")
    array = np.stack(images).transpose(0, 3, 1, 2)
    log.info("pretrain.unlabelled_dir: %d images (%d skipped)", len(images), len(skipped))
    return ImagesOnly(torch.from_numpy(np.ascontiguousarray(array)))


class PretrainSampler(Sampler[int]):
    """The mix sampler's indices, plus every unlabelled image once (indices from `offset`),
    shuffled together; the order depends only on (seed, epoch)."""

    def __init__(self, mix: Sampler[int], offset: int, n_unlabelled: int, seed: int = 0) -> None:
        self.mix, self.offset, self.n_unlabelled, self.seed = mix, offset, n_unlabelled, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.mix, "set_epoch"):
            self.mix.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.mix) + self.n_unlabelled

    def __iter__(self) -> Iterator[int]:
        drawn = [*self.mix, *range(self.offset, self.offset + self.n_unlabelled)]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + 7)
        return iter([drawn[i] for i in torch.randperm(len(drawn), generator=generator).tolist()])


class PretrainData(L.LightningDataModule):
    """Images-only training batches from `data` (a `MixedDataModule`) and `unlabelled_dir`."""

    def __init__(self, data, unlabelled_dir: str | None = None) -> None:
        super().__init__()
        self.data = data
        self.unlabelled_dir = unlabelled_dir
        self.unlabelled: ImagesOnly | None = None

    @property
    def classes(self) -> list[str]:
        return self.data.classes

    def probe_pool(self, split: str, synthetic: bool):
        """The wrapped datamodule's probe pool (the rollout callback's probes)."""
        return self.data.probe_pool(split, synthetic)

    def setup(self, stage: str | None = None) -> None:
        self.data.trainer = self.trainer  # its data report goes to this run's TensorBoard
        self.data.setup(stage)
        if self.unlabelled_dir and self.unlabelled is None:
            self.unlabelled = load_unlabelled(
                self.unlabelled_dir, self.data.input_hw, self.data.resize
            )

    def summary(self) -> dict[str, object]:
        n = len(self.unlabelled) if self.unlabelled is not None else 0
        return {
            **self.data.summary(),
            "unlabelled": n,
            "images_per_epoch": len(self.train_sampler()),
        }

    def train_sampler(self) -> PretrainSampler:
        """The data's mix (each source its share) without class balancing: labels unused."""
        indices: dict[str, list[int]] = {name: [] for name in self.data.sources}
        for i, record in enumerate(self.data.records_of_split["train"]):
            indices[record.source].append(i)
        mix = MixSampler(
            indices, self.data.mix_weights, self.data.samples_per_epoch, seed=self.data.seed
        )
        n = len(self.unlabelled) if self.unlabelled is not None else 0
        offset = len(self.data.datasets["train"])
        return PretrainSampler(mix, offset, n, seed=self.data.seed)

    def train_dataloader(self) -> DataLoader:
        parts = [ImagesOnly(self.data.datasets["train"].images_nchw)]
        if self.unlabelled is not None:
            parts.append(self.unlabelled)
        return DataLoader(
            ConcatDataset(parts),
            batch_size=self.data.batch_size,
            sampler=self.train_sampler(),
            num_workers=self.data.num_workers,
            persistent_workers=self.data.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            ImagesOnly(self.data.datasets["val"].images_nchw), batch_size=self.data.eval_batch_size
        )

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """The configured batch augmentation (`data.batch_augment`) on training batches."""
        augment = self.data.batch_augment
        if augment is not None and self.trainer is not None and self.trainer.training:
            batch["image"] = augment(batch["image"])
        return batch

"""Decoded images held in memory: every record read once, resized, stored as uint8 tensors.

`decode_split` turns a split's records into a `CachedImages` data set; `ProbePool` is the
public view of a cached split that callbacks pick probe images from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from anomaly_vit.data.records import Record, Source
from anomaly_vit.data.resize import ResizeMode, fit_image, fit_mask

Loaded = tuple[np.ndarray, np.ndarray | None]


class CachedImages(Dataset):
    """Decoded images held in memory as uint8 NCHW (and bool NHW masks for evaluation)."""

    def __init__(
        self,
        images_nchw: torch.Tensor,
        labels: torch.Tensor,
        source_ids: torch.Tensor,
        masks_nhw: torch.Tensor | None = None,
        mask_known: torch.Tensor | None = None,
        synthetic: torch.Tensor | None = None,
    ) -> None:
        self.images_nchw = images_nchw
        self.labels = labels
        self.source_ids = source_ids
        self.masks_nhw = masks_nhw
        # per image: is its mask known (a mask was loaded, or the image is good: no defect)?
        # and does it come from a synthetic source? (what the mask loss selects on)
        self.mask_known = mask_known
        self.synthetic = synthetic

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        sample = {
            "image": self.images_nchw[index],
            "label": self.labels[index],
            "source": self.source_ids[index],
            "index": index,
        }
        if self.masks_nhw is not None:
            sample["mask"] = self.masks_nhw[index]
            if self.mask_known is not None:
                sample["mask_known"] = self.mask_known[index]
                sample["synthetic"] = self.synthetic[index]
        return sample


def decode_split(
    records: Sequence[Record],
    load: Callable[[Record], Loaded | None],
    classes: Sequence[str],
    source_names: Sequence[str],
    input_hw: tuple[int, int],
    keep_masks: bool,
    resize: ResizeMode = ResizeMode.SQUASH,
    good_class: str = "good",
    synthetic_sources: Sequence[str] = (),
    desc: str = "decode",
    progress: bool = True,
) -> tuple[CachedImages, list[Record]]:
    """Decode `records` with `load` (None: the record is skipped), each brought to `input_hw`
    (height, width) by `resize`; return the data set and the records kept, in its order."""
    class_index = {c: i for i, c in enumerate(classes)}
    source_index = {n: i for i, n in enumerate(source_names)}
    size_hw = tuple(input_hw)
    images, masks, known, kept = [], [], [], []
    for record in tqdm(records, desc=desc, disable=not progress, leave=False):
        loaded = load(record)
        if loaded is None:
            continue
        image, mask = loaded
        images.append(fit_image(image, size_hw, resize))
        masks.append(
            np.zeros(size_hw, dtype=bool) if mask is None else fit_mask(mask, size_hw, resize)
        )
        known.append(mask is not None or record.label == good_class)
        kept.append(record)
    if not kept:
        images_nchw = torch.zeros((0, 3, *size_hw), dtype=torch.uint8)
        masks_nhw = torch.zeros((0, *size_hw), dtype=torch.bool)
    else:
        images_nchw = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        masks_nhw = torch.from_numpy(np.stack(masks))
    labels = torch.tensor([class_index[r.label] for r in kept], dtype=torch.long)
    source_ids = torch.tensor([source_index[r.source] for r in kept], dtype=torch.long)
    dataset = CachedImages(
        images_nchw,
        labels,
        source_ids,
        masks_nhw if keep_masks else None,
        mask_known=torch.tensor(known, dtype=torch.bool),
        synthetic=torch.tensor([r.source in synthetic_sources for r in kept], dtype=torch.bool),
    )
    return dataset, kept


@dataclass
class ProbePool:
    """Images of one cached split a callback may pick probes from, as the model sees them
    (cached, before augmentation). Index j runs over the pool, not the split."""

    dataset: CachedImages
    rows: list[int]  # the pool's rows of `dataset`
    records: Sequence[Record] | None  # records of `dataset`, row by row
    sources: Mapping[str, Source]
    split: str = "val"
    resize: ResizeMode = ResizeMode.SQUASH  # how the cached images were brought to size

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> list[int]:
        return [int(self.dataset.labels[i]) for i in self.rows]

    @property
    def has_mask(self) -> list[bool]:
        """Whether each image has a defect mask (a mask file, when masks are not cached)."""
        if self.dataset.masks_nhw is not None:
            return [bool(self.dataset.masks_nhw[i].any()) for i in self.rows]
        return [self.records[i].mask_path is not None for i in self.rows]

    def path(self, j: int) -> str:
        return (
            self.records[self.rows[j]].path
            if self.records is not None
            else f"{self.split}[{self.rows[j]}]"
        )

    def image(self, j: int) -> torch.Tensor:
        """uint8 CxHxW."""
        return self.dataset.images_nchw[self.rows[j]]

    def mask(self, j: int) -> torch.Tensor:
        """bool HxW, decoded through the source when the split does not cache masks."""
        i = self.rows[j]
        if self.dataset.masks_nhw is not None:
            return self.dataset.masks_nhw[i]
        record = self.records[i]
        _, mask_hw = self.sources[record.source].load(record)
        size_hw = tuple(self.dataset.images_nchw.shape[-2:])
        if mask_hw is None:
            return torch.zeros(size_hw, dtype=torch.bool)
        return torch.from_numpy(fit_mask(mask_hw, size_hw, self.resize))


def probe_pool(
    dataset: CachedImages,
    records: Sequence[Record] | None,
    sources: Mapping[str, Source],
    synthetic: bool,
    split: str = "val",
    resize: ResizeMode = ResizeMode.SQUASH,
) -> ProbePool:
    """The images of `dataset` from real (or, `synthetic=True`, synthetic) sources."""

    def is_synthetic(i: int) -> bool:
        if records is None:
            return False
        return bool(getattr(sources.get(records[i].source), "synthetic", False))

    rows = [i for i in range(len(dataset)) if is_synthetic(i) == synthetic]
    return ProbePool(dataset, rows, records, sources, split, resize)

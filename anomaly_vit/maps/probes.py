"""The fixed probe set the map callback explains every N epochs, and its dump's arrays.

Probes: `per_class` images per class from the REAL validation split with their masks (defective
ones with a non-empty mask first), picked by a seeded shuffle; optionally the same number per
class from the synthetic training sources too. A dump (`rollouts/epoch_XXXX.npz`, written by
`rundir.write_dump`, read by `rundir.read_dumps`) holds the probes and one epoch's maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from anomaly_vit.maps.kinds import Explanation


@dataclass
class Probes:
    """The fixed probe set: uint8 images [P, 3, H, W], labels [P], bool masks [P, H, W]."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    synthetic: torch.Tensor  # bool [P]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _pick(
    labels: Sequence[int], has_mask: Sequence[bool], per_class: int, num_classes: int, seed: int
) -> list[int]:
    """Indices of up to `per_class` items per class: masked ones first, then a seeded shuffle."""
    rank = np.random.default_rng(seed).permutation(len(labels))
    chosen = []
    for label in range(num_classes):
        candidates = [i for i in range(len(labels)) if labels[i] == label]
        candidates.sort(key=lambda i: (not has_mask[i], rank[i]))
        chosen += candidates[:per_class]
    return chosen


def select_probes(
    datamodule: Any, per_class: int, include_synthetic: bool, seed: int = 0
) -> Probes | None:
    """Probes from the real validation images (`datamodule.probe_pool`), optionally synthetic
    training ones too. Returns None when the datamodule has no cached validation set with masks."""
    pool = datamodule.probe_pool("val", synthetic=False)
    if pool is None or len(pool) == 0:
        return None
    num_classes = len(datamodule.classes)
    pools = [(pool, False)]
    if include_synthetic:
        pools.append((datamodule.probe_pool("train", synthetic=True), True))
    images, masks, labels, paths, synthetic = [], [], [], [], []
    for source_pool, is_synthetic in pools:
        pool_labels = source_pool.labels
        for j in _pick(pool_labels, source_pool.has_mask, per_class, num_classes, seed):
            images.append(source_pool.image(j))
            masks.append(source_pool.mask(j))
            labels.append(pool_labels[j])
            paths.append(source_pool.path(j))
            synthetic.append(is_synthetic)
    return Probes(
        images=torch.stack(images),
        labels=torch.tensor(labels, dtype=torch.long),
        masks=torch.stack(masks).bool(),
        synthetic=torch.tensor(synthetic, dtype=torch.bool),
        paths=paths,
    )


def dump_arrays(
    epoch: int,
    kinds: Sequence[str],
    classes: Sequence[str],
    probes: Probes,
    explanation: Explanation,
) -> dict[str, np.ndarray]:
    """One dump: the probes (images, masks, labels, paths), predictions and the maps of `kinds`
    (image-sized `maps_<kind>` and patch-grid `grids_<kind>`) of global epoch `epoch`."""
    arrays = {
        "epoch": np.asarray(epoch),
        "kinds": np.asarray(kinds),
        "classes": np.asarray(list(classes)),
        "images": probes.images.numpy(),
        "masks": probes.masks.numpy(),
        "labels": probes.labels.numpy(),
        "synthetic": probes.synthetic.numpy(),
        "paths": np.asarray(probes.paths),
        "preds": explanation.preds.numpy(),
        "probs": explanation.probs.numpy(),
    }
    for kind in kinds:
        arrays[f"maps_{kind}"] = explanation.maps[kind].numpy()
        arrays[f"grids_{kind}"] = explanation.grids[kind].numpy()
    return arrays

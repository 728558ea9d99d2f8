"""A tiny manifest defect set for cross-validation tests: items of several photos each, some
items defective (one photo with a dark crack and its mask), the rest good."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def make_defect_set(
    root: Path,
    n_good: int = 8,
    n_defect: int = 4,
    photos_per_item: int = 2,
    size_px: int = 16,
    seed: int = 0,
) -> Path:
    """`<root>/manifest.csv` (path,label,item_id,view,mask) over `n_good` good and `n_defect`
    defective items of `photos_per_item` photos each (a defective item: its first photo is
    labelled "crack", with a mask; the others are "good" views of it). Returns the manifest."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n_good + n_defect):
        item = f"item{index:03d}"
        defective = index >= n_good
        for photo in range(photos_per_item):
            image = np.clip(rng.normal(150, 10, (size_px, size_px)), 0, 255).astype(np.uint8)
            name = f"images/{item}_{photo}.png"
            mask_rel = ""
            label = "good"
            if defective and photo == 0:
                label = "crack"
                mask = np.zeros((size_px, size_px), np.uint8)
                row = int(rng.integers(2, size_px - 3))
                mask[row : row + 2, 2 : size_px - 2] = 255
                image[mask > 0] = 20
                mask_rel = f"masks/{item}_{photo}.png"
                (root / mask_rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(root / mask_rel)
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / name)
            rows.append([name, label, item, f"view{photo}", mask_rel])
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "item_id", "view", "mask"])
        writer.writerows(rows)
    return manifest


def cv_overrides(manifest: Path, root: Path, *extra: str) -> list[str]:
    """`python -m anomaly_vit.cv` overrides for a 1-epoch, one-block ViT on `manifest`."""
    return [
        "data=manifest", f"data.manifest={manifest}", f"paths.root_dir={root}",
        "model.net.img_size=[16,16]", "model.net.patch_size=8", "model.net.embed_dim=16",
        "model.net.depth=1", "model.net.num_heads=2", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "data.progress=false", "callbacks.maps=null", "callbacks.progress=null",
        "callbacks.curves=null", "checkpoint_in_background=false",
        "cv.bootstrap.n_boot=50", *extra,
    ]  # fmt: skip

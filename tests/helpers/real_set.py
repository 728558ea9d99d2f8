"""A tiny grayscale defect set with masks, in the three real-data layouts (manifest, class
folders, paired cameras), for the real-data keys and the real-data benchmark."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

H_PX, W_PX = 40, 16  # portrait, like many real part photos


def _photo(rng: np.random.Generator, defect: bool) -> tuple[np.ndarray, np.ndarray]:
    """A grey part with texture; a defect is a dark horizontal crack, with its mask."""
    image = np.clip(rng.normal(150, 12, (H_PX, W_PX)), 0, 255).astype(np.uint8)
    mask = np.zeros((H_PX, W_PX), dtype=bool)
    if defect:
        y = int(rng.integers(6, H_PX - 6))
        x0 = int(rng.integers(0, W_PX // 2))
        mask[y : y + 2, x0 : x0 + W_PX // 2] = True
        image[mask] = 30
    return image, mask


def make_real_set(root: Path, n_items: int = 12, per_item: int = 3, seed: int = 0) -> Path:
    """A tiny grayscale defect set with masks in all three layouts: manifest.csv, class folders
    (folder/<class>/, masks in folder/masks/<class>/) and paired cameras (paired/left|right)."""
    rng = np.random.default_rng(seed)
    rows = []
    for item in range(n_items):
        defective = item % 3 == 0  # a third of the items, one image in three of those
        for k in range(per_item):
            defect = defective and k == 0
            label = "defect" if defect else "good"
            image, mask = _photo(rng, defect)
            name = f"it{item:02d}_{k}"
            for rel in (f"images/{name}.png", f"folder/{label}/{name}.png"):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / rel)
            mask_rel = ""
            if defect:
                mask_rel = f"masks/{name}.png"
                for rel in (mask_rel, f"folder/masks/{label}/{name}.png"):
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(root / rel)
            rows.append([f"images/{name}.png", label, f"it{item:02d}", "single", mask_rel])
            if k < 2:  # two cameras of the item's first two images
                view = "left" if k == 0 else "right"
                pair_label = "defect" if defective else "good"
                rel = f"paired/{view}/{pair_label}/it{item:02d}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_photo(rng, defective)[0]).save(root / rel)
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "item_id", "view", "mask"])
        writer.writerows(rows)
    return root

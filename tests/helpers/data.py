"""Tiny data and tiny models the tests build on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("good", "scratch", "stain")
SIZE_PX = 32


def image_file(path: Path, value: int = 100, size: int = 8) -> Path:
    """A flat RGB PNG/JPEG of `size` x `size` pixels at `path` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def mask_file(path: Path, pixel: tuple[int, int] = (2, 3), size: int = 8) -> Path:
    """A binary mask PNG with one white `pixel` (row, column)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size, size), np.uint8)
    mask[pixel] = 255
    Image.fromarray(mask).save(path)
    return path


def paired_tree(
    root: Path, n_items: int = 6, size: int = SIZE_PX, classes=CLASSES, seed: int = 0
) -> Path:
    """`<root>/{left,right}/<class>/<class>_NN.png`: random RGB images, one item per stem."""
    rng = np.random.default_rng(seed)
    for label in classes:
        for i in range(n_items):
            for view in ("left", "right"):
                path = root / view / label / f"{label}_{i:02d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return root


def tiny(tmp_path: Path, data_root: Path, *extra: str) -> list[str]:
    """Overrides for a 1-epoch run of a tiny ViT on `data_root` (no rollouts, no test); painted
    defects of the tree's defect classes only."""
    return [
        "debug=smoke", f"paths.root_dir={tmp_path}", "data.demo=null",
        f"data.sources.real.root={data_root}", f"model.net.img_size={SIZE_PX}",
        "data.sources.painted.kinds=[scratch,stain]", "trainer.max_epochs=1",
        "callbacks.maps=null", "test=false", *extra,
    ]  # fmt: skip


# `model.net` of a one-block ViTClassifier on 32 px images (8 px patches), for model tests
TINY_NET = {
    "model_name": "vit_tiny_patch16_224",
    "img_size": 32,
    "patch_size": 8,
    "embed_dim": 32,
    "depth": 1,
    "num_heads": 2,
}


def tiny_vit(**overrides):
    """A 2-block timm ViT on 32 px images (8 px patches, 4 classes), seeded weights."""
    import timm
    import torch

    kwargs = dict(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=4)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs)

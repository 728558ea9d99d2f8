"""Masks move with their images in every path of `BatchAugment` (the mask loss reads them)."""

from __future__ import annotations

import pytest
import torch

from anomaly_vit.data.batch_augment import BatchAugment


def _asymmetric_batch(n: int = 64, side: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose every pixel differs, and masks marking one off-centre corner pixel."""
    images = torch.arange(n * 3 * side * side, dtype=torch.float32).reshape(n, 3, side, side) % 251
    masks = torch.zeros(n, side, side, dtype=torch.bool)
    masks[:, 1, 2] = True
    return images, masks


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hflip": 0.5, "vflip": 0.5},  # the flip-only path conf/data/base/real.yaml uses
        {"hflip": 0.5, "vflip": 0.5, "degrees": 1e-7},  # flips folded into the warp
    ],
    ids=["flip_path", "warp_path"],
)
def test_each_mask_is_flipped_exactly_as_its_image(kwargs) -> None:
    images, masks = _asymmetric_batch()
    torch.manual_seed(0)
    out_images, out_masks = BatchAugment(**kwargs)(images, masks)
    seen = set()
    for image, mask, out_image, out_mask in zip(images, masks, out_images, out_masks, strict=True):
        for kind, dims in (("none", ()), ("h", (-1,)), ("v", (-2,)), ("hv", (-1, -2))):
            if torch.equal(out_image, image.flip(dims) if dims else image):
                expected = mask.flip(dims) if dims else mask
                assert torch.equal(out_mask, expected), kind
                seen.add(kind)
                break
        else:
            raise AssertionError("an image came out as no flip of itself")
    assert seen == {"none", "h", "v", "hv"}  # every flip combination was checked

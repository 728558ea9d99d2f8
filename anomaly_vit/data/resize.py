"""Bring an image of any size to the model's input size: squash, letterbox or crop.

`placement` says where the original pixels land in the input (scale and offset per axis), so a
mask follows its image exactly and a map drawn on the input can be mapped back to the original
pixels. Letterbox keeps the aspect ratio and pads (real photos are rarely square); squash
stretches to the input size; crop keeps the aspect ratio and cuts the long side (a defect near
the border can be cut away).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from anomaly_vit.data.image_io import resize_image, resize_mask
from anomaly_vit.errors import ConfigError, DataError


class ResizeMode(StrEnum):
    """How `data.resize` brings images to `img_size`."""

    LETTERBOX = "letterbox"
    SQUASH = "squash"
    CROP = "crop"


def resize_mode(value: str) -> ResizeMode:
    """`data.resize` as a `ResizeMode`, with a message naming the key when it is unknown."""
    try:
        return ResizeMode(str(value))
    except ValueError:
        choices = [m.value for m in ResizeMode]
        raise ConfigError(f"data.resize={value!r}: use one of {choices}.") from None


def size_hw(img_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """`img_size` (one side, or [height, width]) as (height, width)."""
    sides = [img_size] * 2 if isinstance(img_size, int) else list(img_size)
    height, width = (int(v) for v in (sides * 2 if len(sides) == 1 else sides))
    if height <= 0 or width <= 0:
        raise ConfigError(f"img_size={img_size}: height and width must be positive.")
    return height, width


def auto_size_hw(aspects: list[float], pixel_budget: int, multiple: int) -> tuple[int, int]:
    """The model input (height, width) for images of median aspect (height / width) `aspects`:
    about `pixel_budget` pixels, both sides multiples of `multiple` (the patch size), so an
    elongated part keeps its pixels instead of a letterbox's padding."""
    if not aspects:
        raise DataError("img_size=auto needs training images to measure their aspect ratio")
    aspect = sorted(aspects)[len(aspects) // 2]
    height = (pixel_budget * aspect) ** 0.5
    width = pixel_budget / height
    return tuple(max(multiple, round(side / multiple) * multiple) for side in (height, width))


@dataclass(frozen=True)
class Placement:
    """Where an original image lands in the model input: input = original * scale + offset
    (per axis, in pixels; offsets are negative where a crop cuts)."""

    original_hw: tuple[int, int]
    scaled_hw: tuple[int, int]
    offset_yx: tuple[int, int]
    input_hw: tuple[int, int]

    @property
    def scale_yx(self) -> tuple[float, float]:
        return (
            self.scaled_hw[0] / self.original_hw[0],
            self.scaled_hw[1] / self.original_hw[1],
        )

    def to_original(self, y: float, x: float) -> tuple[float, float]:
        """An input pixel position (y, x) in original pixels."""
        (sy, sx), (oy, ox) = self.scale_yx, self.offset_yx
        return (y - oy) / sy, (x - ox) / sx


def placement(
    original_hw: tuple[int, int], input_hw: tuple[int, int], mode: ResizeMode
) -> Placement:
    """Where an `original_hw` image lands in an `input_hw` input under `mode`."""
    (h, w), (height, width) = original_hw, input_hw
    if mode is ResizeMode.SQUASH:
        return Placement((h, w), (height, width), (0, 0), (height, width))
    pick = min if mode is ResizeMode.LETTERBOX else max
    scale = pick(height / h, width / w)
    scaled = (max(1, round(h * scale)), max(1, round(w * scale)))
    offset = ((height - scaled[0]) // 2, (width - scaled[1]) // 2)
    return Placement((h, w), scaled, offset, (height, width))


def _place(array: np.ndarray, where: Placement) -> np.ndarray:
    """Paste (letterbox) or cut (crop) an already scaled array into the input frame."""
    height, width = where.input_hw
    out = np.zeros((height, width, *array.shape[2:]), dtype=array.dtype)
    oy, ox = where.offset_yx
    sh, sw = where.scaled_hw
    top, left = max(oy, 0), max(ox, 0)
    src_top, src_left = max(-oy, 0), max(-ox, 0)
    rows, cols = min(height - top, sh - src_top), min(width - left, sw - src_left)
    out[top : top + rows, left : left + cols] = array[
        src_top : src_top + rows, src_left : src_left + cols
    ]
    return out


def _fit(array: np.ndarray, input_hw: tuple[int, int], mode: ResizeMode, resize) -> np.ndarray:
    """`array` scaled by `resize` and placed as `mode` says (the one path images and masks share)."""
    where = placement(array.shape[:2], input_hw, mode)
    scaled = resize(array, where.scaled_hw)
    fills = where.scaled_hw == tuple(input_hw) and where.offset_yx == (0, 0)
    return scaled if fills else _place(scaled, where)


def fit_image(image_hw3: np.ndarray, input_hw: tuple[int, int], mode: ResizeMode) -> np.ndarray:
    """A uint8 HxWx3 image brought to `input_hw` (padding is black)."""
    return _fit(image_hw3, input_hw, mode, resize_image)


def fit_mask(mask_hw: np.ndarray, input_hw: tuple[int, int], mode: ResizeMode) -> np.ndarray:
    """A bool HxW mask brought to `input_hw` exactly as its image (`fit_image`)."""
    return _fit(mask_hw, input_hw, mode, resize_mask)

"""Photos to model inputs and maps back to the photos, the way training and `explain` do it.

Decoding is `data.image_io` (every PIL mode to uint8 RGB: gray copied to three channels, alpha
composited on black, 16-bit scaled), resizing is `data.resize.fit_image` (letterbox, squash or
crop as the bundle says): the very functions training and `explain` call, so the two cannot
drift. Normalisation is `ViTClassifier.normalize` in numpy: (pixel - 255 * mean) / (255 * std),
float32. `map_to_original` is `maps.readout.map_to_original` in numpy (bilinear, border
values held, NaN where a crop cut the photo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from anomaly_vit.data.image_io import load_rgb, to_rgb_array
from anomaly_vit.data.resize import Placement, ResizeMode, fit_image, placement

UINT8_MAX = 255
ARRAY_CHANNELS = {3: "RGB", 4: "RGBA"}  # HxWxC arrays the inferencer takes (HxW: gray)


class ImageInputError(ValueError):
    """An input image the model cannot take; the message names it and what to do."""


def to_rgb(image: str | Path | Image.Image | np.ndarray, name: str = "<array>") -> np.ndarray:
    """Any input (path, PIL image, HxW / HxWx3 / HxWx4 uint8 array) as uint8 HxWx3 RGB."""
    if isinstance(image, (str, Path)):
        return load_rgb(image)  # BadImageError (a ValueError) names the file
    if isinstance(image, Image.Image):
        return to_rgb_array(image, name)
    if not isinstance(image, np.ndarray):
        raise ImageInputError(
            f"{name}: a {type(image).__name__} is not an image; give a path, a PIL image or a "
            "uint8 numpy array (HxW, HxWx3 or HxWx4)."
        )
    if image.dtype != np.uint8:
        raise ImageInputError(
            f"{name}: array of dtype {image.dtype}; give uint8 pixel values 0..255 "
            "(e.g. np.clip(x, 0, 255).astype(np.uint8))."
        )
    if image.ndim == 2:
        return to_rgb_array(Image.fromarray(image, "L"), name)
    if image.ndim == 3 and image.shape[2] in ARRAY_CHANNELS:
        return to_rgb_array(Image.fromarray(image, ARRAY_CHANNELS[image.shape[2]]), name)
    raise ImageInputError(
        f"{name}: array of shape {image.shape} has {image.shape[2] if image.ndim == 3 else '?'} "
        "channels; the model takes gray (HxW), RGB (HxWx3) or RGBA (HxWx4) images: convert it, "
        "e.g. with PIL's Image.convert('RGB')."
    )


def model_input(
    rgb_hw3: np.ndarray, input_hw: tuple[int, int], resize: ResizeMode, mean, std
) -> tuple[np.ndarray, Placement]:
    """A uint8 RGB photo as the network's normalised float32 [3, H, W] input, and where the
    photo's pixels landed in it."""
    fitted = fit_image(rgb_hw3, input_hw, resize)
    pixel_mean = np.asarray(mean, dtype=np.float32) * np.float32(UINT8_MAX)
    pixel_std = np.asarray(std, dtype=np.float32) * np.float32(UINT8_MAX)
    normalised = (fitted.astype(np.float32) - pixel_mean) / pixel_std
    return normalised.transpose(2, 0, 1), placement(rgb_hw3.shape[:2], input_hw, resize)


def _axis_samples(n_out: int, scale: float, offset: int, n_in: int):
    """Input indices and weights of bilinear sampling along one axis (border values held)."""
    centres = (np.arange(n_out, dtype=np.float32) + 0.5) * np.float32(scale) + np.float32(offset)
    source = np.clip(centres - 0.5, 0, n_in - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, n_in - 1)
    weight = (source - low).astype(np.float32)
    seen = (centres >= 0) & (centres <= n_in)
    return low, high, weight, seen


def map_to_original(map_hw: np.ndarray, where: Placement) -> np.ndarray:
    """An input-sized map resampled (bilinear) to the photo's pixels through the resize
    `where` describes; pixels the input never saw (cut by a crop) are NaN."""
    (height, width), (in_h, in_w) = where.original_hw, where.input_hw
    (scale_y, scale_x), (off_y, off_x) = where.scale_yx, where.offset_yx
    y0, y1, wy, seen_y = _axis_samples(height, scale_y, off_y, in_h)
    x0, x1, wx, seen_x = _axis_samples(width, scale_x, off_x, in_w)
    rows = map_hw[y0] * (1 - wy)[:, None] + map_hw[y1] * wy[:, None]
    out = rows[:, x0] * (1 - wx)[None, :] + rows[:, x1] * wx[None, :]
    out = out.astype(np.float32)
    out[~(seen_y[:, None] & seen_x[None, :])] = np.nan
    return out

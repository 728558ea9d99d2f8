"""A prediction drawn on its photo, at the photo's resolution (PIL only: fast for many photos).

`overlay_image`: the defect mask tinted, each region boxed, the decision in the top-left corner
(predict's overlays/). `outline`: the mask's border drawn on the photo; `map_overlay`: the map in
colours blended over it (the operator page's two pictures).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

MASK_RGB = (255, 40, 40)
BOX_RGB = (255, 220, 0)
GOOD_RGB = (40, 200, 80)
TEXT_BACKGROUND = (0, 0, 0)


def mask_image(mask_hw: np.ndarray) -> Image.Image:
    """The binary mask as an 8-bit PNG-ready image (255 = defect)."""
    return Image.fromarray(mask_hw.astype(np.uint8) * 255, "L")


def overlay_image(rgb_hw3: np.ndarray, prediction, alpha: float = 0.45) -> Image.Image:
    """`rgb_hw3` (uint8) with the prediction's mask tinted (`alpha`), its boxes and a caption."""
    image = rgb_hw3.astype(np.float32)
    tint = np.asarray(MASK_RGB, dtype=np.float32)
    mask = prediction.mask
    image[mask] = (1 - alpha) * image[mask] + alpha * tint
    out = Image.fromarray(np.clip(image + 0.5, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    for x0, y0, x1, y1 in prediction.boxes:
        draw.rectangle((x0, y0, x1, y1), outline=BOX_RGB, width=max(1, min(out.size) // 200))
    caption = f"{prediction.label} {prediction.score:.3f} ({prediction.policy} {prediction.threshold:.3f})"
    left, top, right, bottom = draw.textbbox((2, 2), caption)
    draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=TEXT_BACKGROUND)
    draw.text((2, 2), caption, fill=MASK_RGB if prediction.is_defect else GOOD_RGB)
    return out


OUTLINE_RGB = (255, 32, 32)
# anchor colours of matplotlib's "inferno", dark to bright (the map overlay's colour scale)
INFERNO_ANCHORS = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32
)
# 256 colours interpolated between the anchors: a map value's colour is one table look-up
COLOUR_LUT = (
    np.stack(
        [
            np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(INFERNO_ANCHORS)), channel)
            for channel in INFERNO_ANCHORS.T
        ],
        axis=1,
    )
    .round()
    .astype(np.uint8)
)


def outline(photo_hw3: np.ndarray, mask_hw: np.ndarray, width_px: int) -> np.ndarray:
    """The photo with the border of `mask` drawn `width_px` thick (inside the mask's edge)."""
    if photo_hw3.shape[:2] != mask_hw.shape:
        raise ValueError(f"photo {photo_hw3.shape[:2]} and mask {mask_hw.shape} differ in size")
    inside = mask_hw.astype(bool)
    core = inside
    for _ in range(max(1, int(width_px))):
        core = _erode(core)
    out = photo_hw3.copy()
    out[inside & ~core] = OUTLINE_RGB
    return out


def _erode(mask_hw: np.ndarray) -> np.ndarray:
    """4-neighbour erosion; pixels at the image border count as outside."""
    padded = np.pad(mask_hw, 1, constant_values=False)
    return (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )


def map_overlay(
    photo_hw3: np.ndarray, map_hw: np.ndarray, value_range: tuple[float, float], alpha: float
) -> np.ndarray:
    """The map in inferno colours blended over the photo; `value_range` maps to dark..bright
    (NaN, where the map has no value, is dark)."""
    if photo_hw3.shape[:2] != map_hw.shape:
        raise ValueError(f"photo {photo_hw3.shape[:2]} and map {map_hw.shape} differ in size")
    lo, hi = value_range
    unit_hw = (map_hw.astype(np.float32) - lo) * (1.0 / max(hi - lo, 1e-12))
    np.clip(unit_hw, 0.0, 1.0, out=unit_hw)
    np.nan_to_num(unit_hw, copy=False, nan=0.0)  # no map value (outside the part): darkest
    colour_hw3 = COLOUR_LUT[np.rint(unit_hw * (len(COLOUR_LUT) - 1)).astype(np.uint8)]
    photo = Image.fromarray(np.ascontiguousarray(photo_hw3, dtype=np.uint8))
    return np.asarray(Image.blend(photo, Image.fromarray(colour_hw3), float(alpha)))


def map_range(map_hw: np.ndarray, map_kind: str | None) -> tuple[float, float]:
    """The values spanning the overlay's colours: 0..1 for a probability map (`tokens`), the
    photo's own min..max for the others (their scale is the model's, not a probability)."""
    if map_kind == "tokens":
        return 0.0, 1.0
    if not np.isfinite(map_hw).any():
        return 0.0, 1.0
    return float(np.nanmin(map_hw)), float(np.nanmax(map_hw))

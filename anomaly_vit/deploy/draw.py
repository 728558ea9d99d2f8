"""A prediction drawn on its photo, at the photo's resolution (PIL only: fast for many photos).

The defect mask is tinted, each region boxed, and the decision written in the top-left corner.
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

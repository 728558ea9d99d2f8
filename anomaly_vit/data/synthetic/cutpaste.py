"""CutPaste defects (Li et al. 2021): a rectangle of a good training image pasted elsewhere on it.

Per record (its own generator): a patch of `area_range` x the image area and width/height ratio
in `aspect_range` is cut at a random place, rotated by an angle whose size is drawn from
`rotation_deg` (random sign; ``[0, 0]`` is the original CutPaste, a thin long patch with
rotation is its "scar" variant), its colour scaled per channel by ``1 +- jitter``, and pasted at
another random place, wholly inside the image. The mask is the pasted rectangle (anti-aliased
edge, optionally feathered by `feather_px`; coverage below `alpha_cutoff` is left out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomaly_vit.data.synthetic.defect_kinds import number, span
from anomaly_vit.data.synthetic.derived import Loaded
from anomaly_vit.data.synthetic.on_good import DefectOnGoodSource, blend, feather

VIEW_CUTPASTE = "cutpaste"


@dataclass(frozen=True)
class CutPasteSettings:
    area_range: tuple[float, float] = span((0.02, 0.15), high=1.0)  # patch area / image area
    aspect_range: tuple[float, float] = span((0.3, 3.3))  # patch width / height
    rotation_deg: tuple[float, float] = span((0.0, 0.0), high=180.0)
    jitter: float = number(0.1, high=1.0)  # per-channel colour factor in 1 +- jitter
    feather_px: float = number(0.0)  # Gaussian sigma of the pasted edge
    alpha_cutoff: float = number(0.1, high=1.0)


def bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample a HxWxC float image at float pixel coordinates (clamped to the image)."""
    height, width = image.shape[:2]
    xs, ys = np.clip(xs, 0, width - 1), np.clip(ys, 0, height - 1)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = (xs - x0)[..., None], (ys - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def box_distance(u: np.ndarray, v: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    """Signed distance of points (u, v) to an axis-aligned box at the origin (negative inside)."""
    qx, qy = np.abs(u) - half_w, np.abs(v) - half_h
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)


class CutPasteSource(DefectOnGoodSource):
    """CutPaste defects on the good train images of `base` (view "cutpaste"; see the module)."""

    VIEW = VIEW_CUTPASTE
    Settings = CutPasteSettings

    def render(self, loaded: tuple[Loaded, ...], rng: np.random.Generator):
        image = loaded[0][0]
        s: CutPasteSettings = self.settings
        height, width = image.shape[:2]
        area = rng.uniform(*s.area_range) * height * width
        aspect = rng.uniform(*s.aspect_range)
        half_w, half_h = np.sqrt(area * aspect) / 2, np.sqrt(area / aspect) / 2
        angle = np.deg2rad(rng.uniform(*s.rotation_deg)) * rng.choice([-1.0, 1.0])
        cos, sin = np.cos(angle), np.sin(angle)
        # the rotated patch's half extents; shrink the patch until both boxes fit the image
        extent_x, extent_y = (
            half_w * abs(cos) + half_h * abs(sin),
            half_w * abs(sin) + half_h * abs(cos),
        )
        fit = min(
            1.0, (width / 2 - 1) / max(extent_x, half_w), (height / 2 - 1) / max(extent_y, half_h)
        )
        half_w, half_h, extent_x, extent_y = (v * fit for v in (half_w, half_h, extent_x, extent_y))
        source_x = rng.uniform(half_w, width - 1 - half_w)
        source_y = rng.uniform(half_h, height - 1 - half_h)
        dest_x = rng.uniform(extent_x, width - 1 - extent_x)
        dest_y = rng.uniform(extent_y, height - 1 - extent_y)
        colour = 1 + rng.uniform(-1, 1, 3) * s.jitter
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        dx, dy = xs - dest_x, ys - dest_y
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # the patch's own frame
        alpha = np.clip(0.5 - box_distance(u, v, half_w, half_h), 0.0, 1.0)
        alpha = feather(alpha, s.feather_px, s.alpha_cutoff)
        target = bilinear(image.astype(np.float64), source_x + u, source_y + v) * colour
        return blend(image, target, alpha), alpha

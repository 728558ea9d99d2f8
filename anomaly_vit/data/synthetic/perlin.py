"""Perlin-noise defects (DRAEM, Zavrtanik et al. 2021): a texture blended in under a noise mask.

Per record (its own generator, never the global RNG, unlike anomalib's loop): 2-D Perlin noise
with ``2**k`` gradient cells per side, ``k`` drawn per axis from `scale_range`, is thresholded
at the quantile that leaves a share of the image drawn from `area_range` above it: that region
is the mask. Inside it the texture is blended in with an opacity drawn from `opacity` (DRAEM's
``1 - beta``): ``texture: other`` takes another good training image (resized to this one),
``texture: self`` the image itself, shifted by a random offset and flipped. The mask's edge can
be feathered (`feather_px`, coverage below `alpha_cutoff` left out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from anomaly_vit.data.records import Record, SourceContext
from anomaly_vit.data.sources.base import SourceError
from anomaly_vit.data.synthetic.defect_kinds import number, span
from anomaly_vit.data.synthetic.derived import Loaded
from anomaly_vit.data.synthetic.on_good import DefectOnGoodSource, blend, feather

VIEW_PERLIN = "perlin"
TEXTURES = ("other", "self")


@dataclass(frozen=True)
class PerlinSettings:
    area_range: tuple[float, float] = span((0.02, 0.15), high=1.0)  # mask share of the image
    scale_range: tuple[int, int] = span((1, 3), high=10, whole=True)  # log2 cells per side
    opacity: tuple[float, float] = span((0.2, 1.0), high=1.0)  # texture weight in the mask
    texture: str = "other"  # other | self
    feather_px: float = number(0.0)
    alpha_cutoff: float = number(0.1, high=1.0)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise(
    shape: tuple[int, int], cells: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """2-D Perlin noise of `shape` with `cells` (rows, columns) gradient cells, values ~[-1, 1]."""
    height, width = shape
    cells_y, cells_x = cells
    angles = rng.uniform(0, 2 * np.pi, (cells_y + 1, cells_x + 1))
    gradients = np.stack([np.sin(angles), np.cos(angles)], axis=-1)  # (gy, gx) per grid corner
    ys, xs = np.arange(height) * cells_y / height, np.arange(width) * cells_x / width
    iy, ix = ys.astype(int), xs.astype(int)
    fy, fx = (ys - iy)[:, None], (xs - ix)[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        g = gradients[(iy + dy)[:, None], (ix + dx)[None, :]]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    u, v = _fade(fx), _fade(fy)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return np.sqrt(2) * (top * (1 - v) + bottom * v)


class PerlinSource(DefectOnGoodSource):
    """Perlin-noise defects on the good train images of `base` (view "perlin"; see the module).
    With ``texture: other`` a record's second parent is the texture image (another good train
    item when there is one)."""

    VIEW = VIEW_PERLIN
    Settings = PerlinSettings

    def __init__(self, base: str, **kwargs) -> None:
        super().__init__(base, **kwargs)
        if self.settings.texture not in TEXTURES:
            raise SourceError(
                f"{self.key('texture')} = {self.settings.texture!r}: use one of {list(TEXTURES)}"
            )

    def extra_parents(self, context: SourceContext, parents: list[Record]):
        if self.settings.texture != "other":
            return None

        def texture(parent: Record, variant: int) -> tuple[Record, ...]:
            others = [p for p in parents if p.item_id != parent.item_id] or parents
            return (self.pick(others, parent, variant),)

        return texture

    def render(self, loaded: tuple[Loaded, ...], rng: np.random.Generator):
        image = loaded[0][0]
        s: PerlinSettings = self.settings
        shape = image.shape[:2]
        cells = tuple(2 ** int(rng.integers(s.scale_range[0], s.scale_range[1] + 1)) for _ in "yx")
        noise = perlin_noise(shape, cells, rng)
        share = rng.uniform(*s.area_range)
        mask = noise > np.quantile(noise, 1 - share)
        alpha = feather(mask * rng.uniform(*s.opacity), s.feather_px, s.alpha_cutoff)
        if s.texture == "other":
            other = loaded[1][0]
            if other.shape != image.shape:
                size = (image.shape[1], image.shape[0])
                other = np.asarray(Image.fromarray(other).resize(size, Image.BILINEAR))
            texture = other
        else:
            shift = [int(rng.integers(n // 4, n - n // 4 + 1)) for n in shape]
            texture = np.roll(image, shift, axis=(0, 1))
            texture = texture[::-1] if rng.random() < 0.5 else texture[:, ::-1]
        return blend(image, texture, alpha), alpha

"""Transplanted defects: a real defect, cut by its mask from a defective training image, pasted
onto a good training image.

Donors are the defective (not `good_label`) train records of `base` that have a mask; both ends
are training items, so nothing of val or test leaks in. Per record the donor is picked
reproducibly; its defect's bounding box, grown by a ring of ``ceil(3 * feather_px) + 1`` px of
its surroundings, is cut out (shrunk when larger than the good image) and placed at a random
place (``placement: random``) or at the donor's own relative position (``same``). Blending:
with `match_mean`, the patch's colour is shifted per channel so its surroundings (the ring and
the box outside the defect) have the mean of the pixels they cover (a Poisson-like match of the
background); the defect's mask, feathered by `feather_px` (coverage below `alpha_cutoff` left
out), is the alpha. The record's label is the donor's (or `label`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from anomaly_vit.data.records import Record, SourceContext
from anomaly_vit.data.sources.base import SourceError
from anomaly_vit.data.synthetic.defect_kinds import number
from anomaly_vit.data.synthetic.derived import Loaded
from anomaly_vit.data.synthetic.on_good import DefectOnGoodSource, blend, feather

VIEW_TRANSPLANT = "transplant"
PLACEMENTS = ("random", "same")


@dataclass(frozen=True)
class TransplantSettings:
    placement: str = "random"  # random | same
    match_mean: bool = True
    feather_px: float = number(1.0)
    alpha_cutoff: float = number(0.1, high=1.0)


class TransplantSource(DefectOnGoodSource):
    """Real defects (by their masks) of `base`'s defective train images on its good train images;
    a record's parents are (good image, donor). See the module for placement and blending."""

    VIEW = VIEW_TRANSPLANT
    Settings = TransplantSettings

    def __init__(self, base: str, **kwargs) -> None:
        super().__init__(base, **kwargs)
        if self.settings.placement not in PLACEMENTS:
            raise SourceError(
                f"{self.key('placement')} = {self.settings.placement!r}: use one of "
                f"{list(PLACEMENTS)}"
            )

    def extra_parents(self, context: SourceContext, parents: list[Record]):
        donors = [r for r in self.train_records(context, good=False) if r.mask_path is not None]
        if not donors:
            raise SourceError(
                f"transplants need defective train images with masks, and source '{self.base}' "
                f"({self.key('base')}) has none; give it masks or set {self.key('weight')} to 0"
            )
        return lambda parent, variant: (self.pick(donors, parent, variant),)

    def default_label(self, record: Record) -> str:
        return record.parents[1].label

    def render(self, loaded: tuple[Loaded, ...], rng: np.random.Generator):
        (image, _), (donor, donor_mask) = loaded
        s: TransplantSettings = self.settings
        if donor_mask is None or not donor_mask.any():
            raise SourceError(f"source '{self.name}': a donor's mask is empty; check its masks")
        rows, cols = np.nonzero(donor_mask)
        ring = math.ceil(3 * s.feather_px) + 1
        top, left = max(rows.min() - ring, 0), max(cols.min() - ring, 0)
        bottom = min(rows.max() + ring + 1, donor.shape[0])
        right = min(cols.max() + ring + 1, donor.shape[1])
        patch, patch_mask = donor[top:bottom, left:right], donor_mask[top:bottom, left:right]
        height, width = image.shape[:2]
        scale = min(1.0, height / patch.shape[0], width / patch.shape[1])
        if scale < 1.0:
            size = (max(1, int(patch.shape[1] * scale)), max(1, int(patch.shape[0] * scale)))
            patch = np.asarray(Image.fromarray(patch).resize(size, Image.BILINEAR))
            patch_mask = np.asarray(Image.fromarray(patch_mask).resize(size, Image.NEAREST))
        h, w = patch_mask.shape
        if s.placement == "same":
            y = min(round(top * height / donor.shape[0]), height - h)
            x = min(round(left * width / donor.shape[1]), width - w)
        else:
            y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        window = (slice(y, y + h), slice(x, x + w))
        pasted = patch.astype(np.float64)
        surround = ~patch_mask
        if s.match_mean and surround.any():
            pasted += image[window][surround].mean(axis=0) - pasted[surround].mean(axis=0)
        target = image.astype(np.float64)
        target[window] = pasted
        alpha = np.zeros((height, width))
        alpha[window] = patch_mask
        alpha = feather(alpha, s.feather_px, s.alpha_cutoff)
        return blend(image, target, alpha), alpha

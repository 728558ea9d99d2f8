"""Synthetic defects (scratches, stains, cracks) painted onto good training images, with masks.

`PaintedDefectSource` takes the ``good`` images of a base source whose item is in the train
split and yields, per image, `variants_per_image` records per defect kind. Each record renders
deterministically from a seed derived (stable hash, not Python's `hash`) from the context seed,
the item id, the parent's view, the variant index and the kind.

How a defect is drawn (settings in `defect_kinds`; sizes are fractions of the image's shorter
side, ranges are ``(low, high)`` drawn uniformly):

1. a shape: a scratch is a thin curved stroke (quadratic Bezier), a stain an irregular blob
   (radius modulated by random harmonics), a crack a jagged random-walk polyline with branches;
2. its coverage ``alpha`` in 0..1 (anti-aliased edges) is blurred (Gaussian,
   `paint.blur_sigma_px`), then values below `paint.alpha_cutoff` are set to 0: the mask is
   exactly ``alpha > 0``, so every pixel outside the mask is left unchanged;
3. the shape is redrawn (same random stream) until its mask covers a share of the image within
   `placement.area_range`, at most `placement.max_tries` times;
4. paint: ``out = image + alpha * (target - image)``; a dark defect has
   ``target = image * (1 - c * jitter * tint)``, a bright one (scratches only, with probability
   `scratch.bright_prob`) ``target = image + (255 - image) * c * jitter``, with contrast ``c``
   from `paint.contrast` and a per-channel ``jitter`` in ``1 ± paint.color_jitter``;
   `stain.tint` darkens channels unequally (a brownish stain), scratches and cracks use no tint.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from anomaly_vit.data.image_io import UINT8_MAX
from anomaly_vit.data.records import Record, SourceContext
from anomaly_vit.data.sources.base import SourceError
from anomaly_vit.data.synthetic.composites import union_mask
from anomaly_vit.data.synthetic.defect_kinds import (
    KINDS,
    Canvas,
    Paint,
    Placement,
    from_config,
)
from anomaly_vit.data.synthetic.derived import DerivedSource

log = logging.getLogger(__name__)

VIEW_PAINTED = "painted"
TRAIN_SPLIT = "train"
BLUR_TRUNCATE = 3.0  # Gaussian kernel radius in standard deviations


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from the parts' text, identical across runs and processes."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def gaussian_blur(values: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur of a float HxW array (edges padded with zeros)."""
    if sigma_px <= 0:
        return values
    radius = max(1, math.ceil(BLUR_TRUNCATE * sigma_px))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        windows = np.lib.stride_tricks.sliding_window_view(
            np.pad(values, pad), len(kernel), axis=axis
        )
        values = windows @ kernel
    return values


class PaintedDefectSource(DerivedSource):
    """Defects painted on the `good_label` train images of `base`; one record per
    (image, kind, variant) with label `label` if given, else ``label_of_kind.get(kind, kind)``,
    and view "painted".

    `placement`, `paint` and each kind (`scratch`, `stain`, `crack`) are mappings of settings
    (see `defect_kinds`); keys left out keep their defaults.
    """

    def __init__(
        self,
        base: str,
        kinds: Sequence[str] = tuple(KINDS),
        variants_per_image: int = 1,
        label_of_kind: Mapping[str, str] | None = None,
        label: str | None = None,
        good_label: str = "good",
        placement: Mapping[str, Any] | None = None,
        paint: Mapping[str, Any] | None = None,
        scratch: Mapping[str, Any] | None = None,
        stain: Mapping[str, Any] | None = None,
        crack: Mapping[str, Any] | None = None,
        name: str = "",
        synthetic: bool = True,
        weight: float = 1.0,
    ) -> None:
        super().__init__(base, name=name, synthetic=synthetic, weight=weight)
        self.kinds = tuple(str(k) for k in kinds)
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise SourceError(
                f"{self.key('kinds')} = {list(self.kinds)}: give each kind once, from {list(KINDS)}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
        variants = int(variants_per_image)
        if variants < 1:
            raise SourceError(
                f"{self.key('variants_per_image')} = {variants_per_image}: must be an integer >= 1"
            )
        self.variants_per_image = variants
        self.label_of_kind = dict(label_of_kind or {})
        self.one_label = None if label is None else str(label)
        stray = [k for k in self.label_of_kind if k not in self.kinds]
        if stray:
            raise SourceError(
                f"{self.key('label_of_kind')} maps kinds {stray} that are not in "
                f"{self.key('kinds')} {list(self.kinds)}"
            )
        self.good_label = str(good_label)
        self.placement = from_config(Placement, placement, self._key_in("placement"))
        self.paint = from_config(Paint, paint, self._key_in("paint"))
        given = {"scratch": scratch, "stain": stain, "crack": crack}
        self.shapes = {k: from_config(KINDS[k], given[k], self._key_in(k)) for k in KINDS}
        self._seed = 0
        self._kind_of: dict[str, str] = {}  # by description: a binary task relabels records

    def _key_in(self, group: str):
        return lambda param: self.key(f"{group}.{param}")

    def label(self, kind: str) -> str:
        """Class label of a defect kind (`label`, else `label_of_kind`, else the kind's name)."""
        if self.one_label is not None:
            return self.one_label
        return self.label_of_kind.get(kind, kind)

    def scan(self, context: SourceContext) -> list[Record]:
        base_records = self.base_records(context)
        self._seed = context.seed
        parents = [
            r
            for r in base_records
            if r.label == self.good_label and context.split_of_item.get(r.item_id) == TRAIN_SPLIT
        ]
        if not parents:
            raise SourceError(
                f"painted defects need '{self.good_label}' images in the train split, and source "
                f"'{self.base}' ({self.key('base')}) has none; check {self.key('good_label')} "
                f"and the split, or set {self.key('weight')} to 0"
            )
        self._kind_of = {}
        records: list[Record] = []
        for parent in parents:
            for kind in self.kinds:
                for variant in range(self.variants_per_image):
                    description = f"{parent.path}|{VIEW_PAINTED}:{kind}:{variant}"
                    record = Record(
                        source=self.name,
                        item_id=parent.item_id,
                        label=self.label(kind),
                        view=VIEW_PAINTED,
                        path=description,
                        mask_path=description,
                        parents=(parent,),
                        variant=variant,
                    )
                    self._kind_of[description] = kind
                    records.append(record)
        return records

    def load(self, record: Record) -> tuple[np.ndarray, np.ndarray | None]:
        """Paint the record's defect onto its parent image; returns (image, defect mask)."""
        if record.path not in self._kind_of:
            raise RuntimeError(
                f"source '{self.name}': record not from this source's scan(): {record}"
            )
        (parent,) = record.parents
        ((image, parent_mask),) = self.load_parents((parent,))
        kind = self._kind_of[record.path]
        seed = stable_seed(self._seed, record.item_id, parent.view, record.variant, kind)
        painted, mask = self.render(image, kind, np.random.default_rng(seed))
        return painted, union_mask([parent_mask, mask])

    def render(
        self, image: np.ndarray, kind: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Paint one defect of `kind` on a uint8 HxWx3 image; returns (new image, bool mask)."""
        alpha = self.draw_alpha(image.shape[:2], kind, rng)
        base = image.astype(np.float64)
        paint = self.paint
        strength = np.clip(
            rng.uniform(*paint.contrast) * (1 + rng.uniform(-1, 1, 3) * paint.color_jitter), 0, 1
        )
        if kind == "scratch" and rng.random() < self.shapes["scratch"].bright_prob:
            target = base + (UINT8_MAX - base) * strength
        else:
            tint = np.asarray(self.shapes["stain"].tint) if kind == "stain" else 1.0
            target = base * (1 - strength * tint)
        out = base + alpha[..., None] * (target - base)
        return np.clip(np.floor(out + 0.5), 0, UINT8_MAX).astype(np.uint8), alpha > 0

    def draw_alpha(self, shape: tuple[int, int], kind: str, rng: np.random.Generator) -> np.ndarray:
        """Coverage (float HxW in 0..1, 0 outside the defect) with a share within `area_range`."""
        placement, paint = self.placement, self.paint
        canvas = Canvas(tuple(shape), placement.margin, paint.min_width_px)
        low, high = placement.area_range
        shares = []
        for _ in range(placement.max_tries):
            alpha = self.shapes[kind].draw(canvas, rng)
            alpha = gaussian_blur(alpha, rng.uniform(*paint.blur_sigma_px))
            alpha[alpha < paint.alpha_cutoff] = 0.0
            share = float(np.mean(alpha > 0))
            if low <= share <= high:
                return alpha
            shares.append(share)
        raise SourceError(
            f"source '{self.name}': no {kind} on a {shape[1]}x{shape[0]} image covered "
            f"{self.key('placement.area_range')} = {list(placement.area_range)} in "
            f"{placement.max_tries} tries (got shares {min(shares):.4f}..{max(shares):.4f}); "
            f"adjust the sizes in {self.key(kind)} or the area_range"
        )

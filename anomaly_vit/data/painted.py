"""Synthetic defects (scratches, stains, cracks) painted onto good training images, with masks.

`PaintedDefectSource` takes the ``good`` images of a base source whose item is in the train
split and yields, per image, `variants_per_image` records per defect kind. Each record renders
deterministically from a seed derived (stable hash, not Python's `hash`) from the context seed,
the item id, the parent's view, the variant index and the kind.

How a defect is drawn (all sizes are fractions of the image's shorter side, ranges are
``(low, high)`` drawn uniformly):

1. a shape: a scratch is a thin curved stroke (quadratic Bezier), a stain an irregular blob
   (radius modulated by random harmonics), a crack a jagged random-walk polyline with branches;
2. its coverage ``alpha`` in 0..1 (anti-aliased edges) is blurred (Gaussian, `blur_sigma_px`),
   then values below `alpha_cutoff` are set to 0: the mask is exactly ``alpha > 0``, so every
   pixel outside the mask is left unchanged;
3. the shape is redrawn (same random stream) until its mask covers a share of the image within
   `area_range`, at most `max_tries` times;
4. paint: ``out = image + alpha * (target - image)``; a dark defect has
   ``target = image * (1 - c * jitter * tint)``, a bright one (scratches only, with probability
   `scratch_bright_prob`) ``target = image + (255 - image) * c * jitter``, with contrast ``c``
   from `contrast` and a per-channel ``jitter`` in ``1 ± color_jitter``; `stain_tint` darkens
   channels unequally (a brownish stain), scratches and cracks use no tint.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from anomaly_vit.data.composites import union_mask
from anomaly_vit.data.image_io import UINT8_MAX
from anomaly_vit.data.records import Record, Source, SourceContext
from anomaly_vit.data.sources import BaseSource, SourceError

log = logging.getLogger(__name__)

KINDS = ("scratch", "stain", "crack")
VIEW_PAINTED = "painted"
TRAIN_SPLIT = "train"
BLUR_TRUNCATE = 3.0  # Gaussian kernel radius in standard deviations
MIN_STAIN_RADIUS_SHARE = 0.2  # a stain's radius never shrinks below this share of its mean


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


def _segment_coverage(
    alpha: np.ndarray, start: np.ndarray, end: np.ndarray, half_width: float
) -> None:
    """Max-accumulate into `alpha` the anti-aliased coverage of a thick segment (x, y pixels)."""
    reach = half_width + 1.0
    low = np.floor(np.minimum(start, end) - reach).astype(int).clip(0)
    high = np.ceil(np.maximum(start, end) + reach).astype(int) + 1
    (x0, y0), (x1, y1) = low, np.minimum(high, alpha.shape[::-1])
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    delta = end - start
    length2 = max(float(delta @ delta), np.finfo(float).tiny)
    t = np.clip(((xs - start[0]) * delta[0] + (ys - start[1]) * delta[1]) / length2, 0, 1)
    dist = np.hypot(xs - (start[0] + t * delta[0]), ys - (start[1] + t * delta[1]))
    coverage = np.clip(half_width + 0.5 - dist, 0.0, 1.0)
    np.maximum(alpha[y0:y1, x0:x1], coverage, out=alpha[y0:y1, x0:x1])


def _polyline_coverage(alpha: np.ndarray, points: np.ndarray, half_width: float) -> None:
    for start, end in zip(points[:-1], points[1:], strict=True):
        _segment_coverage(alpha, start, end, half_width)


class PaintedDefectSource(BaseSource):
    """Defects painted on the `good_label` train images of `base`; one record per
    (image, kind, variant) with label ``label_of_kind.get(kind, kind)`` and view "painted".

    See the module docstring for how each parameter is used.
    """

    def __init__(
        self,
        base: str,
        kinds: Sequence[str] = KINDS,
        variants_per_image: int = 1,
        label_of_kind: Mapping[str, str] | None = None,
        good_label: str = "good",
        area_range: Sequence[float] = (0.005, 0.05),
        max_tries: int = 50,
        placement_margin: float = 0.1,
        contrast: Sequence[float] = (0.3, 0.7),
        color_jitter: float = 0.15,
        blur_sigma_px: Sequence[float] = (0.3, 1.2),
        alpha_cutoff: float = 0.1,
        min_width_px: float = 1.0,
        scratch_length: Sequence[float] = (0.25, 0.6),
        scratch_width: Sequence[float] = (0.01, 0.03),
        scratch_bend: Sequence[float] = (0.0, 0.2),
        scratch_segments: int = 16,
        scratch_bright_prob: float = 0.5,
        stain_radius: Sequence[float] = (0.04, 0.12),
        stain_irregularity: float = 0.25,
        stain_harmonics: int = 5,
        stain_tint: Sequence[float] = (0.75, 0.9, 1.0),
        crack_length: Sequence[float] = (0.25, 0.5),
        crack_width: Sequence[float] = (0.01, 0.025),
        crack_segments: int = 10,
        crack_jaggedness: float = 0.35,
        crack_branches: Sequence[int] = (1, 3),
        crack_branch_length: Sequence[float] = (0.2, 0.5),
        crack_branch_angle_deg: Sequence[float] = (20.0, 60.0),
        crack_branch_width_scale: float = 0.6,
        name: str = "",
        synthetic: bool = True,
        weight: float = 1.0,
    ) -> None:
        super().__init__(name=name, synthetic=synthetic, weight=weight)
        self.base = str(base)
        self.kinds = tuple(str(k) for k in kinds)
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise SourceError(
                f"{self.key('kinds')} = {list(self.kinds)}: give each kind once, from {list(KINDS)}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
        self.variants_per_image = self._int(variants_per_image, "variants_per_image", low=1)
        self.label_of_kind = dict(label_of_kind or {})
        stray = [k for k in self.label_of_kind if k not in self.kinds]
        if stray:
            raise SourceError(
                f"{self.key('label_of_kind')} maps kinds {stray} that are not in "
                f"{self.key('kinds')} {list(self.kinds)}"
            )
        self.good_label = str(good_label)
        self.area_range = self._range(area_range, "area_range", high=1.0)
        self.max_tries = self._int(max_tries, "max_tries", low=1)
        self.placement_margin = self._number(placement_margin, "placement_margin", high=0.5)
        self.contrast = self._range(contrast, "contrast", high=1.0)
        self.color_jitter = self._number(color_jitter, "color_jitter", high=1.0)
        self.blur_sigma_px = self._range(blur_sigma_px, "blur_sigma_px")
        self.alpha_cutoff = self._number(alpha_cutoff, "alpha_cutoff", high=1.0)
        self.min_width_px = self._number(min_width_px, "min_width_px")
        self.scratch_length = self._range(scratch_length, "scratch_length")
        self.scratch_width = self._range(scratch_width, "scratch_width")
        self.scratch_bend = self._range(scratch_bend, "scratch_bend")
        self.scratch_segments = self._int(scratch_segments, "scratch_segments", low=1)
        self.scratch_bright_prob = self._number(
            scratch_bright_prob, "scratch_bright_prob", high=1.0
        )
        self.stain_radius = self._range(stain_radius, "stain_radius")
        self.stain_irregularity = self._number(stain_irregularity, "stain_irregularity")
        self.stain_harmonics = self._int(stain_harmonics, "stain_harmonics", low=1)
        self.stain_tint = tuple(float(v) for v in stain_tint)
        if len(self.stain_tint) != 3 or not all(0 < v <= 1 for v in self.stain_tint):
            raise SourceError(f"{self.key('stain_tint')} = {stain_tint}: give 3 numbers in (0, 1]")
        self.crack_length = self._range(crack_length, "crack_length")
        self.crack_width = self._range(crack_width, "crack_width")
        self.crack_segments = self._int(crack_segments, "crack_segments", low=2)
        self.crack_jaggedness = self._number(crack_jaggedness, "crack_jaggedness")
        self.crack_branches = tuple(int(v) for v in self._range(crack_branches, "crack_branches"))
        self.crack_branch_length = self._range(crack_branch_length, "crack_branch_length")
        self.crack_branch_angle_deg = self._range(crack_branch_angle_deg, "crack_branch_angle_deg")
        self.crack_branch_width_scale = self._number(
            crack_branch_width_scale, "crack_branch_width_scale"
        )
        self._base_source: Source | None = None
        self._seed = 0
        self._kind_of: dict[Record, str] = {}
        self._cache: tuple[Record, tuple[np.ndarray, np.ndarray | None]] | None = None

    # -- config checks -------------------------------------------------------------------------

    def _number(
        self, value: object, param: str, low: float = 0.0, high: float | None = None
    ) -> float:
        number = float(value)  # type: ignore[arg-type]
        if not (number >= low and (high is None or number <= high)):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise SourceError(f"{self.key(param)} = {value}: must be {bound}")
        return number

    def _int(self, value: object, param: str, low: int) -> int:
        number = int(value)  # type: ignore[call-overload]
        if number < low:
            raise SourceError(f"{self.key(param)} = {value}: must be an integer >= {low}")
        return number

    def _range(
        self, value: Sequence[float], param: str, high: float | None = None
    ) -> tuple[float, float]:
        values = [float(v) for v in value]
        if (
            len(values) != 2
            or not 0 <= values[0] <= values[1]
            or (high is not None and values[1] > high)
        ):
            limit = f" <= {high}" if high is not None else ""
            raise SourceError(
                f"{self.key(param)} = {list(value)}: give [low, high] with 0 <= low <= high{limit}"
            )
        return values[0], values[1]

    # -- records -------------------------------------------------------------------------------

    def label(self, kind: str) -> str:
        """Class label of a defect kind (`label_of_kind`, default the kind's name)."""
        return self.label_of_kind.get(kind, kind)

    def scan(self, context: SourceContext) -> list[Record]:
        if self.base not in context.records or self.base not in context.sources:
            raise SourceError(
                f"{self.key('base')} = '{self.base}' is not a scanned source (known: "
                f"{sorted(context.records)}); name an existing source listed before this one"
            )
        self._base_source = context.sources[self.base]
        self._seed = context.seed
        self._cache = None
        parents = [
            r
            for r in context.records[self.base]
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
                    self._kind_of[record] = kind
                    records.append(record)
        return records

    def load(self, record: Record) -> tuple[np.ndarray, np.ndarray | None]:
        """Paint the record's defect onto its parent image; returns (image, defect mask)."""
        if self._base_source is None or record not in self._kind_of:
            raise RuntimeError(
                f"source '{self.name}': record not from this source's scan(): {record}"
            )
        (parent,) = record.parents
        if self._cache is None or self._cache[0] != parent:
            self._cache = (parent, self._base_source.load(parent))
        image, parent_mask = self._cache[1]
        kind = self._kind_of[record]
        seed = stable_seed(self._seed, record.item_id, parent.view, record.variant, kind)
        painted, mask = self.render(image, kind, np.random.default_rng(seed))
        return painted, union_mask([parent_mask, mask])

    # -- rendering -----------------------------------------------------------------------------

    def render(
        self, image: np.ndarray, kind: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Paint one defect of `kind` on a uint8 HxWx3 image; returns (new image, bool mask)."""
        alpha = self.draw_alpha(image.shape[:2], kind, rng)
        base = image.astype(np.float64)
        strength = np.clip(
            rng.uniform(*self.contrast) * (1 + rng.uniform(-1, 1, 3) * self.color_jitter), 0, 1
        )
        if kind == "scratch" and rng.random() < self.scratch_bright_prob:
            target = base + (UINT8_MAX - base) * strength
        else:
            tint = np.asarray(self.stain_tint) if kind == "stain" else 1.0
            target = base * (1 - strength * tint)
        out = base + alpha[..., None] * (target - base)
        return np.clip(np.floor(out + 0.5), 0, UINT8_MAX).astype(np.uint8), alpha > 0

    def draw_alpha(self, shape: tuple[int, int], kind: str, rng: np.random.Generator) -> np.ndarray:
        """Coverage (float HxW in 0..1, 0 outside the defect) with a share within `area_range`."""
        low, high = self.area_range
        shares = []
        for _ in range(self.max_tries):
            alpha = getattr(self, f"_draw_{kind}")(shape, rng)
            alpha = gaussian_blur(alpha, rng.uniform(*self.blur_sigma_px))
            alpha[alpha < self.alpha_cutoff] = 0.0
            share = float(np.mean(alpha > 0))
            if low <= share <= high:
                return alpha
            shares.append(share)
        raise SourceError(
            f"source '{self.name}': no {kind} on a {shape[1]}x{shape[0]} image covered "
            f"{self.key('area_range')} = {list(self.area_range)} in {self.max_tries} tries (got "
            f"shares {min(shares):.4f}..{max(shares):.4f}); adjust the {kind}_* sizes or area_range"
        )

    def _centre(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        height, width = shape
        margin = self.placement_margin
        return np.array(
            [rng.uniform(margin, 1 - margin) * width, rng.uniform(margin, 1 - margin) * height]
        )

    def _half_width(self, fraction: float, side: float) -> float:
        return max(fraction * side, self.min_width_px) / 2

    def _draw_scratch(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        side = min(shape)
        centre = self._centre(shape, rng)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(*self.scratch_length) * side
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        bend = rng.uniform(*self.scratch_bend) * length * rng.choice([-1.0, 1.0])
        start, end, control = (
            centre - direction * length / 2,
            centre + direction * length / 2,
            centre + normal * 2 * bend,
        )
        t = np.linspace(0, 1, self.scratch_segments + 1)[:, None]
        points = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
        alpha = np.zeros(shape)
        _polyline_coverage(alpha, points, self._half_width(rng.uniform(*self.scratch_width), side))
        return alpha

    def _draw_stain(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        side = min(shape)
        cx, cy = self._centre(shape, rng)
        radius = rng.uniform(*self.stain_radius) * side
        orders = np.arange(2, self.stain_harmonics + 2)
        amplitudes = rng.uniform(-1, 1, len(orders)) * self.stain_irregularity / orders
        phases = rng.uniform(0, 2 * np.pi, len(orders))
        reach = radius * (1 + self.stain_irregularity) + 1
        height, width = shape
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, height)
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, width)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        rho, theta = np.hypot(xs - cx, ys - cy), np.arctan2(ys - cy, xs - cx)
        wobble = np.cos(orders[:, None, None] * theta + phases[:, None, None])
        edge = radius * np.maximum(
            1 + np.tensordot(amplitudes, wobble, axes=1), MIN_STAIN_RADIUS_SHARE
        )
        alpha = np.zeros(shape)
        alpha[y0:y1, x0:x1] = np.clip(edge - rho + 0.5, 0.0, 1.0)
        return alpha

    def _draw_crack(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        side = min(shape)
        length = rng.uniform(*self.crack_length) * side
        angle = rng.uniform(0, 2 * np.pi)
        half_width = self._half_width(rng.uniform(*self.crack_width), side)
        main = self._random_walk(self._centre(shape, rng), angle, length, self.crack_segments, rng)
        main -= (main[-1] - main[0]) / 2  # centre the chord on the drawn centre
        alpha = np.zeros(shape)
        _polyline_coverage(alpha, main, half_width)
        low, high = self.crack_branches
        for _ in range(int(rng.integers(low, high + 1))):
            at = int(rng.integers(1, self.crack_segments))
            turn = np.deg2rad(rng.uniform(*self.crack_branch_angle_deg)) * rng.choice([-1.0, 1.0])
            heading = np.arctan2(*(main[at] - main[at - 1])[::-1]) + turn
            branch_length = rng.uniform(*self.crack_branch_length) * length
            branch = self._random_walk(
                main[at], heading, branch_length, max(2, self.crack_segments // 2), rng
            )
            branch_half = max(half_width * self.crack_branch_width_scale, self.min_width_px / 2)
            _polyline_coverage(alpha, branch, branch_half)
        return alpha

    def _random_walk(
        self,
        start: np.ndarray,
        angle: float,
        length: float,
        segments: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        headings = angle + np.cumsum(rng.normal(0, self.crack_jaggedness, segments))
        steps = np.stack([np.cos(headings), np.sin(headings)], axis=1) * length / segments
        return np.vstack([start, start + np.cumsum(steps, axis=0)])

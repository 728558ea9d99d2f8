"""The painted defect kinds and their settings, one small dataclass each.

Sizes are fractions of the image's shorter side; ranges are ``(low, high)`` drawn uniformly.
Each setting declares its check in its field (`span`, `number`, `whole`), so a bad value
names its config key, e.g. ``data.sources.painted.scratch.length``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from anomaly_vit.data.sources.base import SourceError
from anomaly_vit.data.synthetic.geometry import (
    harmonic_wobble,
    polyline_distance,
    quadratic_bezier,
    walk,
)

MIN_STAIN_RADIUS_SHARE = 0.2  # a stain's radius never shrinks below this share of its mean
Settings = TypeVar("Settings")


def span(default: tuple[float, float], high: float | None = None, whole: bool = False) -> Any:
    """A ``[low, high]`` setting with ``0 <= low <= high (<= high bound)``."""
    return field(default=default, metadata={"check": "span", "high": high, "whole": whole})


def number(default: float, low: float = 0.0, high: float | None = None) -> Any:
    """A number setting within ``[low, high]``."""
    return field(default=default, metadata={"check": "number", "low": low, "high": high})


def whole(default: int, low: int) -> Any:
    """An integer setting ``>= low``."""
    return field(default=default, metadata={"check": "whole", "low": low})


def unit_triple(default: tuple[float, float, float]) -> Any:
    """Three per-channel factors in (0, 1]."""
    return field(default=default, metadata={"check": "tint"})


def _checked(value: Any, meta: Mapping[str, Any], key: str) -> Any:
    if meta["check"] == "tint":
        result = tuple(float(v) for v in value)
        if len(result) != 3 or not all(0 < v <= 1 for v in result):
            raise SourceError(f"{key} = {list(value)}: give 3 numbers in (0, 1]")
        return result
    if meta["check"] == "number":
        low, high = meta["low"], meta["high"]
        result = float(value)
        if not (result >= low and (high is None or result <= high)):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise SourceError(f"{key} = {value}: must be {bound}")
        return result
    if meta["check"] == "whole":
        result = int(value)
        if result < meta["low"]:
            raise SourceError(f"{key} = {value}: must be an integer >= {meta['low']}")
        return result
    values = [float(v) for v in value]
    high = meta["high"]
    if len(values) != 2 or not 0 <= values[0] <= values[1] or (high and values[1] > high):
        limit = f" <= {high}" if high is not None else ""
        raise SourceError(f"{key} = {list(value)}: give [low, high] with 0 <= low <= high{limit}")
    return tuple(int(v) for v in values) if meta["whole"] else (values[0], values[1])


def from_config(
    cls: type[Settings], values: Mapping[str, Any] | None, key: Callable[[str], str]
) -> Settings:
    """Build settings `cls` from a config mapping (missing keys keep their defaults), checked."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise SourceError(f"{key(unknown[0])} is not a setting; valid settings: {sorted(fields)}")
    checked = {}
    for name, spec in fields.items():
        value = values.get(name, spec.default)
        checked[name] = _checked(value, spec.metadata, key(name)) if spec.metadata else value
    return cls(**checked)


@dataclass(frozen=True)
class Placement:
    """Where a defect goes and how large it may be."""

    area_range: tuple[float, float] = span((0.005, 0.05), high=1.0)  # accepted mask share
    max_tries: int = whole(50, low=1)  # redraws until the mask share is within `area_range`
    margin: float = number(0.1, high=0.5)  # min distance of a defect's centre from the border


@dataclass(frozen=True)
class Paint:
    """How a drawn shape changes the pixels under it."""

    contrast: tuple[float, float] = span((0.3, 0.7), high=1.0)
    color_jitter: float = number(0.15, high=1.0)  # per-channel factor in 1 +- color_jitter
    blur_sigma_px: tuple[float, float] = span((0.3, 1.2))  # softness of the edge
    alpha_cutoff: float = number(0.1, high=1.0)  # coverage below this is set to 0
    min_width_px: float = number(1.0)  # thinnest stroke


@dataclass(frozen=True)
class Canvas:
    """The image a shape is drawn on: its size, the placement margin and the thinnest stroke."""

    shape: tuple[int, int]
    margin: float
    min_width_px: float

    @property
    def side(self) -> float:
        return min(self.shape)

    def centre(self, rng: np.random.Generator) -> np.ndarray:
        height, width = self.shape
        return np.array(
            [
                rng.uniform(self.margin, 1 - self.margin) * width,
                rng.uniform(self.margin, 1 - self.margin) * height,
            ]
        )

    def half_width(self, fraction: float) -> float:
        return max(fraction * self.side, self.min_width_px) / 2

    def stroke(self, alpha: np.ndarray, points: np.ndarray, half_width: float) -> None:
        """Max-accumulate into `alpha` the anti-aliased coverage of a stroke along `points`."""
        reach = half_width + 1.0
        low = np.floor(points.min(axis=0) - reach).astype(int).clip(0)
        high = np.ceil(points.max(axis=0) + reach).astype(int) + 1
        (x0, y0), (x1, y1) = low, np.minimum(high, alpha.shape[::-1])
        if x0 >= x1 or y0 >= y1:
            return
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        cover = np.clip(half_width + 0.5 - polyline_distance(xs, ys, points), 0.0, 1.0)
        np.maximum(alpha[y0:y1, x0:x1], cover, out=alpha[y0:y1, x0:x1])


@dataclass(frozen=True)
class Scratch:
    """A thin curved stroke (quadratic Bezier), dark or bright."""

    length: tuple[float, float] = span((0.25, 0.6))
    width: tuple[float, float] = span((0.01, 0.03))
    bend: tuple[float, float] = span((0.0, 0.2))  # sagitta relative to the length
    segments: int = whole(16, low=1)
    bright_prob: float = number(0.5, high=1.0)  # share of bright scratches

    def draw(self, canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
        centre = canvas.centre(rng)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(*self.length) * canvas.side
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        bend = rng.uniform(*self.bend) * length * rng.choice([-1.0, 1.0])
        start, end = centre - direction * length / 2, centre + direction * length / 2
        points = quadratic_bezier(start, centre + normal * 2 * bend, end, self.segments + 1)
        alpha = np.zeros(canvas.shape)
        canvas.stroke(alpha, points, canvas.half_width(rng.uniform(*self.width)))
        return alpha


@dataclass(frozen=True)
class Stain:
    """An irregular blob (radius modulated by random harmonics), tinted."""

    radius: tuple[float, float] = span((0.04, 0.12))
    irregularity: float = number(0.25)  # amplitude of the radius harmonics
    harmonics: int = whole(5, low=1)
    tint: tuple[float, float, float] = unit_triple(
        (0.75, 0.9, 1.0)
    )  # per-channel darkening (brown)

    def draw(self, canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
        cx, cy = canvas.centre(rng)
        radius = rng.uniform(*self.radius) * canvas.side
        orders = np.arange(2, self.harmonics + 2)
        amplitudes = rng.uniform(-1, 1, len(orders)) * self.irregularity / orders
        phases = rng.uniform(0, 2 * np.pi, len(orders))
        reach = radius * (1 + self.irregularity) + 1
        height, width = canvas.shape
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, height)
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, width)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        rho, theta = np.hypot(xs - cx, ys - cy), np.arctan2(ys - cy, xs - cx)
        wobble = harmonic_wobble(theta, orders, amplitudes, phases)
        edge = radius * np.maximum(1 + wobble, MIN_STAIN_RADIUS_SHARE)
        alpha = np.zeros(canvas.shape)
        alpha[y0:y1, x0:x1] = np.clip(edge - rho + 0.5, 0.0, 1.0)
        return alpha


@dataclass(frozen=True)
class Crack:
    """A jagged random-walk polyline with a few thinner branches."""

    length: tuple[float, float] = span((0.25, 0.5))
    width: tuple[float, float] = span((0.01, 0.025))
    segments: int = whole(10, low=2)
    jaggedness: float = number(0.35)  # std of the heading change per segment (radians)
    branches: tuple[int, int] = span((1, 3), whole=True)
    branch_length: tuple[float, float] = span((0.2, 0.5))  # relative to the main crack
    branch_angle_deg: tuple[float, float] = span((20.0, 60.0))
    branch_width_scale: float = number(0.6)  # relative to the main crack

    def _walk(self, start, angle, length, segments, rng: np.random.Generator) -> np.ndarray:
        headings = angle + np.cumsum(rng.normal(0, self.jaggedness, segments))
        return walk(start, headings, length / segments)

    def draw(self, canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
        length = rng.uniform(*self.length) * canvas.side
        angle = rng.uniform(0, 2 * np.pi)
        half_width = canvas.half_width(rng.uniform(*self.width))
        main = self._walk(canvas.centre(rng), angle, length, self.segments, rng)
        main -= (main[-1] - main[0]) / 2  # centre the chord on the drawn centre
        alpha = np.zeros(canvas.shape)
        canvas.stroke(alpha, main, half_width)
        low, high = self.branches
        for _ in range(int(rng.integers(low, high + 1))):
            at = int(rng.integers(1, self.segments))
            turn = np.deg2rad(rng.uniform(*self.branch_angle_deg)) * rng.choice([-1.0, 1.0])
            heading = np.arctan2(*(main[at] - main[at - 1])[::-1]) + turn
            branch_length = rng.uniform(*self.branch_length) * length
            branch = self._walk(main[at], heading, branch_length, max(2, self.segments // 2), rng)
            branch_half = max(half_width * self.branch_width_scale, canvas.min_width_px / 2)
            canvas.stroke(alpha, branch, branch_half)
        return alpha


KINDS: dict[str, type] = {"scratch": Scratch, "stain": Stain, "crack": Crack}

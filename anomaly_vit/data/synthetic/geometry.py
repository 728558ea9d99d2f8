"""Defect geometry shared by the demo renderer and the painted-defect source.

Both draw the same shapes: a scratch is a quadratic Bezier stroke, a crack a random walk of
straight segments, a stain a disc whose radius wobbles with a few harmonics. A stroke's
anti-aliased coverage comes from each pixel's distance to its polyline.
"""

from __future__ import annotations

import numpy as np


def quadratic_bezier(
    start: np.ndarray, control: np.ndarray, end: np.ndarray, n_points: int
) -> np.ndarray:
    """`n_points` (x, y) points of the quadratic Bezier curve from `start` to `end`."""
    t = np.linspace(0, 1, n_points)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end


def walk(origin: np.ndarray, headings: np.ndarray, step: float) -> np.ndarray:
    """Polyline from `origin` taking one step of length `step` along each heading (radians)."""
    steps = step * np.stack([np.cos(headings), np.sin(headings)], axis=1)
    return np.vstack([origin, origin + np.cumsum(steps, axis=0)])


def polyline_distance(x: np.ndarray, y: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance of every (x, y) to the polyline through `points` (K, 2)."""
    extra = (1,) * x.ndim
    a, b = points[:-1].reshape(-1, 2, *extra), points[1:].reshape(-1, 2, *extra)  # (S, 2, ...)
    d = b - a
    length2 = np.maximum((d**2).sum(axis=1), 1e-12)
    px, py = x[None] - a[:, 0], y[None] - a[:, 1]
    t = np.clip((px * d[:, 0] + py * d[:, 1]) / length2, 0.0, 1.0)
    return np.hypot(px - t * d[:, 0], py - t * d[:, 1]).min(axis=0)


def coverage(signed_distance: np.ndarray, pixel: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape given its signed distance (negative inside)."""
    return np.clip(0.5 - signed_distance / pixel, 0.0, 1.0)


def harmonic_wobble(
    angle: np.ndarray, orders: np.ndarray, amplitudes: np.ndarray, phases: np.ndarray
) -> np.ndarray:
    """Relative change of a blob's radius at `angle`: sum of a * cos(k * angle + phase)."""
    return sum(
        a * np.cos(k * angle + ph) for k, a, ph in zip(orders, amplitudes, phases, strict=True)
    )

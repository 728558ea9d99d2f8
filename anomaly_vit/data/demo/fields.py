"""Pixel grids and fields of the demo renderer: frame coordinates, signed distances, blurs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anomaly_vit.data.demo.params import Range


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _rounded_square_sd(x: np.ndarray, y: np.ndarray, half: float, radius: float) -> np.ndarray:
    qx = np.abs(x) - (half - radius)
    qy = np.abs(y) - (half - radius)
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - radius


def _near(x: np.ndarray, y: np.ndarray, low: Sequence[float], high: Sequence[float]) -> np.ndarray:
    """Which points lie in the box [low, high] (to evaluate small shapes only where they are)."""
    return (x >= low[0]) & (x <= high[0]) & (y >= low[1]) & (y <= high[1])


def _sample_wrapped(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sample of a tileable grid covering the frame [-0.5, 0.5)^2 at (x, y)."""
    n = grid.shape[0]
    padded = np.pad(grid, ((0, 1), (0, 1)), mode="wrap").ravel()  # (n + 1)^2: no index wraps
    fx, fy = ((x + 0.5) * n - 0.5) % n, ((y + 0.5) * n - 0.5) % n
    x0, y0 = fx.astype(np.int64), fy.astype(np.int64)
    wx, wy = fx - x0, fy - y0
    i = y0 * (n + 1) + x0
    top = padded[i] + wx * (padded[i + 1] - padded[i])
    bottom = padded[i + n + 1] + wx * (padded[i + n + 2] - padded[i + n + 1])
    return top + wy * (bottom - top)


def _frame_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centers of an n x n image in frame units (x right, y down, origin at the center)."""
    c = (np.arange(n) + 0.5) / n - 0.5
    y, x = np.meshgrid(c, c, indexing="ij")
    return x, y


def _box_blur_wrapped(a: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Running mean over `length` samples along `axis`, wrapping around (for tileable noise)."""
    if length <= 1:
        return a
    n = a.shape[axis]
    padded = np.take(a, np.arange(-(length // 2), n + length - length // 2) % n, axis=axis)
    total = np.cumsum(padded, axis=axis)  # total[k] = sum of padded[0..k]
    upper = np.take(total, np.arange(length - 1, length - 1 + n), axis=axis)
    lower = np.take(total, np.arange(-1, n - 1), axis=axis)  # index -1 stands for an empty sum
    first = [slice(None)] * a.ndim
    first[axis] = 0
    lower[tuple(first)] = 0
    return (upper - lower) / length


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, C) image with reflected borders."""
    if sigma <= 0:
        return img
    radius = max(1, int(np.ceil(2 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    h, w = img.shape[:2]
    padded = np.pad(img, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
    img = sum(t * padded[i : i + h] for i, t in enumerate(taps))
    padded = np.pad(img, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    return sum(t * padded[:, i : i + w] for i, t in enumerate(taps))

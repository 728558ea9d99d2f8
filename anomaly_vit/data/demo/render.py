"""Render a sampled demo item: both camera views and the defect masks, deterministically."""

from __future__ import annotations

import numpy as np

from anomaly_vit.data.demo.fields import (
    _frame_grid,
    _gaussian_blur,
    _near,
    _rounded_square_sd,
    _sample_wrapped,
)
from anomaly_vit.data.demo.params import Defect, ItemSpec, RenderParams, ViewSpec
from anomaly_vit.data.demo.sampling import _defect_alpha
from anomaly_vit.data.synthetic.geometry import (
    coverage,
)


def _label_gray(spec: ItemSpec, x: np.ndarray, y: np.ndarray, p: RenderParams) -> np.ndarray:
    """Gray of the printed label (paper or ink) at points inside its box."""
    x0, y0, x1, y1 = spec.label_box
    rows, cols = spec.label_bits.shape
    blank = p.label_print_margin
    u = ((x - x0) / (x1 - x0) - blank) / (1 - 2 * blank) * cols  # in character cells
    v = ((y - y0) / (y1 - y0) - blank) / (1 - 2 * blank) * rows
    r, c = np.floor(v).astype(np.int64), np.floor(u).astype(np.int64)
    valid = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
    bit = spec.label_bits[np.clip(r, 0, rows - 1), np.clip(c, 0, cols - 1)] & valid
    char_w, char_h = p.label_char_size
    in_stroke = (np.abs(u - c - 0.5) < char_w / 2) & (np.abs(v - r - 0.5) < char_h / 2)
    paper, ink = spec.label_colors
    return np.where(bit & in_stroke, ink, paper)


def _part_color(
    spec: ItemSpec, x: np.ndarray, y: np.ndarray, pixel: float, p: RenderParams
) -> tuple[np.ndarray, np.ndarray]:
    """Defect-free albedo (H, W, 3) and coverage (H, W) of the part at part coordinates."""
    color = spec.part_rgb * (1 + _sample_wrapped(spec.texture, x, y))[..., None]
    if spec.label_box is not None:
        x0, y0, x1, y1 = spec.label_box
        near = _near(x, y, (x0 - pixel, y0 - pixel), (x1 + pixel, y1 + pixel))
        xs, ys = x[near], y[near]
        inside = np.minimum(np.minimum(xs - x0, x1 - xs), np.minimum(ys - y0, y1 - ys))
        paper = coverage(-inside, pixel)[:, None]
        color[near] += paper * (_label_gray(spec, xs, ys, p)[:, None] - color[near])
    for hx, hy, hr, gray in spec.holes:
        reach = hr + p.hole_rim_width + pixel
        near = _near(x, y, (hx - reach, hy - reach), (hx + reach, hy + reach))
        distance = np.hypot(x[near] - hx, y[near] - hy)
        rim_sd = np.abs(distance - hr - p.hole_rim_width / 2) - p.hole_rim_width / 2
        local = color[near]
        local += coverage(rim_sd, pixel)[:, None] * (p.hole_rim_gray - local)
        local += coverage(distance - hr, pixel)[:, None] * (gray - local)
        color[near] = local
    part = coverage(_rounded_square_sd(x, y, p.part_half_size, p.part_corner_radius), pixel)
    return color, part


def _apply_defect(color: np.ndarray, defect: Defect, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    if defect.kind == "stain":
        return color * (1 - a * (1 - defect.color))
    return color + a * (defect.color - color)


def _to_part_coords(spec: ItemSpec, view: ViewSpec, x: np.ndarray, y: np.ndarray):
    """Map image coordinates of a view to part coordinates (undo parallax, then the pose)."""
    x = x - view.offset - view.shear * y
    x, y = x - spec.translation[0], y - spec.translation[1]
    c, s = np.cos(spec.rotation), np.sin(spec.rotation)
    return (c * x + s * y) / spec.scale, (-s * x + c * y) / spec.scale


def render_item(
    spec: ItemSpec, params: RenderParams | None = None, defect: bool = True
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Render both views of an item: {view: (uint8 HxWx3 RGB, bool HxW mask or None)}.

    `defect=False` renders the same item, cameras and noise with the defect switched off.
    """
    p = params or RenderParams()
    size, ss = spec.image_size, p.supersample
    x, y = _frame_grid(size * ss)  # fine grid: geometry and albedo
    x_out, y_out = _frame_grid(size)  # output grid: smooth lighting
    background = 1 + x * spec.background_slope[0] + y * spec.background_slope[1]
    background = spec.background_rgb * background[..., None]
    out = {}
    for name, view in spec.views.items():
        u, v = _to_part_coords(spec, view, x, y)
        pixel = 1.0 / (size * ss * spec.scale)
        color, part = _part_color(spec, u, v, pixel, p)
        mask = None
        if spec.defect is not None:
            alpha = _defect_alpha(spec.defect, u, v, pixel)
            mask = alpha.reshape(size, ss, size, ss).mean(axis=(1, 3)) >= 0.5
            if defect:
                color = _apply_defect(color, spec.defect, alpha * view.defect_strength)
        img = background + part[..., None] * (color - background)
        img = img.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
        shading = 1 + x_out * view.shading_slope[0] + y_out * view.shading_slope[1]
        img = img * shading[..., None] * view.gain_rgb
        d2 = (x_out - view.highlight_center[0]) ** 2 + (y_out - view.highlight_center[1]) ** 2
        highlight = view.highlight_strength * np.exp(-0.5 * d2 / view.highlight_radius**2)
        img = img + highlight[..., None] * (1 - img)
        img = _gaussian_blur(img, p.blur_sigma_px)
        img = img + np.random.default_rng(view.noise_seed).normal(0, p.noise_sigma, img.shape)
        out[name] = (np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), mask)
    return out

"""Built-in demo data set: a simulated stereo inspection rig that renders parts with small defects.

Each physical item is a flat part (brushed surface, drilled holes, sometimes a printed label)
seen by a LEFT and a RIGHT camera. Both views share the item's pose (shift, rotation, scale);
the views differ by parallax (a horizontal offset and shear), exposure, white balance,
highlight, sensor noise and blur. Defective items carry one small defect (scratch, stain or
crack) drawn in the part's own coordinates, so it moves with pose and parallax, and every
defective view gets a pixel mask of exactly that defect as seen in that view.

Everything is evaluated analytically on pixel grids (numpy only) and seeded per item, so the
same seed gives byte-identical files, and nuisance never depends on the class.

Layout written by `generate_demo` (the paired-folder layout the data sources read)::

    <out>/left/<class>/item_XXXXX.png        <out>/right/<class>/item_XXXXX.png
    <out>/masks/left/<class>/item_XXXXX.png  <out>/masks/right/<class>/item_XXXXX.png
    <out>/README.txt                          <out>/demo.json   (parameters; written last)
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

GOOD = "good"
DEFECT_KINDS = ("scratch", "stain", "crack")
DEFAULT_CLASSES = (GOOD, *DEFECT_KINDS)
VIEWS = ("left", "right")
FORMAT_VERSION = 1  # bump when the renderer changes, so `ensure_demo` regenerates old sets
PARAMS_FILE = "demo.json"
README_FILE = "README.txt"
OWNED_ENTRIES = (*VIEWS, "masks", README_FILE, PARAMS_FILE)  # what a regeneration may replace

CURVE_POINTS = 9  # points of the polyline that draws a (slightly bowed) scratch

Range = tuple[float, float]


@dataclass(frozen=True)
class RenderParams:
    """Every knob of the renderer. Lengths are fractions of the image side ("frame units")."""

    supersample: int = 2  # render at this multiple of the image size, then box-downsample
    # the part
    part_half_size: float = 0.36  # half side of the (rounded square) part
    part_corner_radius: float = 0.08
    part_gray: Range = (0.4, 0.58)  # base albedo of the part
    part_tint: float = 0.06  # max per-channel deviation of the part color from gray
    texture_amplitude: float = 0.035  # relative std of the brushed surface texture
    texture_brush_frac: float = 0.25  # length of the brushing streaks (fraction of the part canvas)
    texture_coarse_cells: int = 5  # cells of the low-frequency mottling per canvas side
    texture_coarse_amplitude: float = 0.04
    holes: tuple[int, int] = (0, 4)  # number of drilled mounting holes (in corners), inclusive
    hole_inset: float = 0.1  # distance of a hole's center from the part's sides
    hole_jitter: float = 0.02  # max |offset| of a hole from its nominal place
    hole_radius: Range = (0.04, 0.07)
    hole_gray: Range = (0.04, 0.10)
    hole_rim_width: float = 0.016  # bright chamfer ring around each hole
    hole_rim_gray: float = 0.85
    label_probability: float = 0.7  # share of parts with a printed label
    label_size: tuple[Range, Range] = ((0.22, 0.32), (0.12, 0.18))  # (width, height)
    label_inset: float = 0.04  # min distance of the label from the part's sides
    label_gray: Range = (0.82, 0.95)
    label_print_gray: Range = (0.10, 0.25)
    label_print_margin: float = 0.15  # share of the label's width/height kept blank at each side
    label_char_size: tuple[float, float] = (0.6, 0.5)  # printed stroke within its cell (w, h)
    label_grid: tuple[int, int] = (2, 7)  # rows x characters of printed marks
    label_ink_share: float = 0.7  # probability that a character cell is printed
    # the background (table)
    background_gray: Range = (0.12, 0.28)
    background_gradient: float = 0.15
    color_jitter: float = 0.1  # max relative per-channel deviation of background and stain colors
    # pose of the item (shared by both views)
    rotation_deg: float = 10.0  # max |rotation|
    translation: float = 0.04  # max |shift| per axis
    scale_jitter: float = 0.04  # max |relative scale change|
    # the stereo pair and the cameras
    parallax: Range = (0.02, 0.06)  # horizontal offset between the views
    parallax_shear: float = 0.05  # max |horizontal shear| between the views
    exposure: Range = (0.75, 1.25)  # per-view gain
    white_balance: float = 0.05  # max per-channel deviation of the per-view gain
    shading_gradient: float = 0.15  # max |illumination slope| across the frame
    highlight_strength: Range = (0.1, 0.4)  # blend toward white at the highlight's center
    highlight_radius: Range = (0.15, 0.35)
    blur_sigma_px: float = 0.6  # output pixels
    noise_sigma: float = 0.02  # sensor noise std (intensity in [0, 1])
    # defects
    defect_area: Range = (0.006, 0.045)  # accepted mask share of the image (checked when placed)
    defect_view_strength: Range = (0.75, 1.0)  # per-view contrast factor of the defect
    defect_edge_margin: float = 0.06  # min distance of a defect from the part's edge
    defect_margin: float = 0.03  # min distance of a defect from holes and the label
    defect_max_tries: int = 1000
    scratch_length: Range = (0.3, 0.55)
    scratch_width: Range = (0.024, 0.034)
    scratch_bow: float = 0.06  # max |sagitta| relative to the length
    scratch_bright_probability: float = 0.7
    scratch_bright_gray: Range = (0.92, 1.0)
    scratch_dark_gray: Range = (0.15, 0.25)
    stain_radius: Range = (0.05, 0.1)
    stain_harmonics: tuple[int, int] = (2, 4)  # orders of the outline's wobble, inclusive
    stain_wobble: float = 0.2  # max amplitude of each shape harmonic (relative to the radius)
    stain_softness: float = 0.4  # width of the soft edge (relative to the radius)
    stain_tints: tuple[tuple[float, float, float], ...] = (
        (0.55, 0.36, 0.18),  # rust
        (0.45, 0.40, 0.50),  # oil
        (0.58, 0.52, 0.25),  # residue
    )
    crack_length: Range = (0.3, 0.5)
    crack_width: Range = (0.028, 0.04)
    crack_segments: tuple[int, int] = (6, 9)
    crack_jag_rad: Range = (0.5, 1.0)  # zigzag: |heading change| of each segment, sides alternate
    crack_drift_rad: float = 0.2  # std of the slow bend of the crack's direction per segment
    crack_branches: tuple[int, int] = (1, 2)
    crack_branch_length: Range = (0.3, 0.5)  # relative to the main crack
    crack_branch_angle_rad: Range = (0.5, 1.2)  # |angle| between a branch and the main crack
    crack_branch_width: float = 0.75  # relative to the main crack
    crack_gray: Range = (0.02, 0.08)


@dataclass
class ViewSpec:
    """What one camera adds to the item: parallax, exposure, highlight, defect contrast, noise."""

    offset: float
    shear: float
    gain_rgb: np.ndarray  # (3,)
    shading_slope: np.ndarray  # (2,) illumination slope along x, y
    highlight_center: np.ndarray  # (2,)
    highlight_radius: float
    highlight_strength: float
    defect_strength: float
    noise_seed: int


@dataclass
class Defect:
    """One defect in part coordinates: polylines (scratch, crack) or a blob (stain)."""

    kind: str
    polylines: list[np.ndarray] = field(default_factory=list)  # each (K, 2) points
    widths: list[float] = field(default_factory=list)  # one per polyline
    color: np.ndarray | None = None  # (3,) target color (scratch, crack) or tint (stain)
    center: np.ndarray | None = None  # (2,) stain center
    radius: float = 0.0
    harmonics: np.ndarray | None = None  # (H, 3): order, amplitude, phase
    softness: float = 0.0


@dataclass
class ItemSpec:
    """Everything random about one item; rendering it is deterministic."""

    label: str
    image_size: int
    part_rgb: np.ndarray  # (3,)
    texture: np.ndarray  # (N, N) relative albedo variation, tileable over the part canvas
    holes: np.ndarray  # (K, 4): x, y, radius, gray
    label_box: np.ndarray | None  # (4,): x0, y0, x1, y1
    label_colors: np.ndarray  # (2,): paper gray, ink gray
    label_bits: np.ndarray  # (rows, cols) bool
    background_rgb: np.ndarray  # (3,)
    background_slope: np.ndarray  # (2,)
    rotation: float  # radians
    translation: np.ndarray  # (2,)
    scale: float
    views: dict[str, ViewSpec]
    defect: Defect | None


# ----------------------------------------------------------------------------- geometry helpers


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _coverage(signed_distance: np.ndarray, pixel: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape given its signed distance (negative inside)."""
    return np.clip(0.5 - signed_distance / pixel, 0.0, 1.0)


def _rounded_square_sd(x: np.ndarray, y: np.ndarray, half: float, radius: float) -> np.ndarray:
    qx = np.abs(x) - (half - radius)
    qy = np.abs(y) - (half - radius)
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - radius


def _polyline_distance(x: np.ndarray, y: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance of every (x, y) to the polyline through `points` (K, 2)."""
    extra = (1,) * x.ndim
    a, b = points[:-1].reshape(-1, 2, *extra), points[1:].reshape(-1, 2, *extra)  # (S, 2, ...)
    d = b - a
    length2 = np.maximum((d**2).sum(axis=1), 1e-12)
    px, py = x[None] - a[:, 0], y[None] - a[:, 1]
    t = np.clip((px * d[:, 0] + py * d[:, 1]) / length2, 0.0, 1.0)
    return np.hypot(px - t * d[:, 0], py - t * d[:, 1]).min(axis=0)


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


# ----------------------------------------------------------------------------- item sampling


def _sample_texture(rng: np.random.Generator, n: int, p: RenderParams) -> np.ndarray:
    fine = rng.standard_normal((n, n))
    fine = _box_blur_wrapped(fine, max(1, int(p.texture_brush_frac * n)), axis=1)
    fine = _box_blur_wrapped(fine, 2, axis=0)
    fine *= p.texture_amplitude / max(float(fine.std()), 1e-12)
    coarse = rng.standard_normal((p.texture_coarse_cells, p.texture_coarse_cells))
    x, y = _frame_grid(n)
    return fine + p.texture_coarse_amplitude * _sample_wrapped(coarse, x, y)


def _part_interior_sd(spec: ItemSpec, x: np.ndarray, y: np.ndarray, p: RenderParams) -> np.ndarray:
    """Signed distance to the region where a defect may lie (the part minus holes and label)."""
    sd = _rounded_square_sd(x, y, p.part_half_size, p.part_corner_radius)
    for hx, hy, hr, _ in spec.holes:
        sd = np.maximum(sd, hr + p.hole_rim_width - np.hypot(x - hx, y - hy))
    if spec.label_box is not None:
        x0, y0, x1, y1 = spec.label_box
        inside_x = np.minimum(x - x0, x1 - x)
        inside_y = np.minimum(y - y0, y1 - y)
        sd = np.maximum(sd, np.minimum(inside_x, inside_y))
    return sd


def _sample_polyline_defect(rng: np.random.Generator, kind: str, p: RenderParams) -> Defect:
    start = np.zeros(2)  # `_place_defect` moves it onto the part
    heading = rng.uniform(0, 2 * np.pi)
    if kind == "scratch":
        length = _uniform(rng, p.scratch_length)
        end = start + length * np.array([np.cos(heading), np.sin(heading)])
        normal = np.array([-np.sin(heading), np.cos(heading)])
        control = (start + end) / 2 + rng.uniform(-1, 1) * p.scratch_bow * length * 2 * normal
        t = np.linspace(0, 1, CURVE_POINTS)[:, None]
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
        bright = rng.random() < p.scratch_bright_probability
        gray = _uniform(rng, p.scratch_bright_gray if bright else p.scratch_dark_gray)
        return Defect(kind, [curve], [_uniform(rng, p.scratch_width)], np.full(3, gray))

    def walk(origin: np.ndarray, direction: float, length: float, segments: int) -> np.ndarray:
        zigzag = (-1.0) ** np.arange(segments) * rng.choice([-1.0, 1.0])
        zigzag *= rng.uniform(p.crack_jag_rad[0], p.crack_jag_rad[1], size=segments)
        bend = np.cumsum(rng.normal(0, p.crack_drift_rad, size=segments))
        angles = direction + bend + zigzag
        steps = (length / segments) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return np.vstack([origin, origin + np.cumsum(steps, axis=0)])

    length = _uniform(rng, p.crack_length)
    n_segments = int(rng.integers(p.crack_segments[0], p.crack_segments[1] + 1))
    main = walk(start, heading, length, n_segments)
    width = _uniform(rng, p.crack_width)
    polylines, widths = [main], [width]
    for _ in range(int(rng.integers(p.crack_branches[0], p.crack_branches[1] + 1))):
        root = main[int(rng.integers(1, n_segments))]
        side = rng.choice([-1.0, 1.0]) * _uniform(rng, p.crack_branch_angle_rad)
        branch_length = length * _uniform(rng, p.crack_branch_length)
        polylines.append(walk(root, heading + side, branch_length, max(2, n_segments // 3)))
        widths.append(p.crack_branch_width * width)
    return Defect(kind, polylines, widths, np.full(3, _uniform(rng, p.crack_gray)))


def _sample_stain(rng: np.random.Generator, p: RenderParams) -> Defect:
    orders = np.arange(p.stain_harmonics[0], p.stain_harmonics[1] + 1, dtype=float)
    harmonics = np.stack(
        [
            orders,
            rng.uniform(0, p.stain_wobble, size=orders.size),
            rng.uniform(0, 2 * np.pi, size=orders.size),
        ],
        axis=1,
    )
    tint = np.array(p.stain_tints[int(rng.integers(len(p.stain_tints)))])
    return Defect(
        "stain",
        color=tint * rng.uniform(1 - p.color_jitter, 1 + p.color_jitter, size=3),
        center=np.zeros(2),  # `_place_defect` moves it onto the part
        radius=_uniform(rng, p.stain_radius),
        harmonics=harmonics,
        softness=p.stain_softness,
    )


def _defect_alpha(defect: Defect, x: np.ndarray, y: np.ndarray, pixel: float) -> np.ndarray:
    """Coverage in [0, 1] of the defect at part coordinates (x, y); >= 0.5 is inside the mask."""
    low, high = _defect_extent(defect)
    near = _near(x, y, low - pixel, high + pixel)
    x, y, alpha = x[near], y[near], np.zeros(x.shape)
    if defect.kind == "stain":
        dx, dy = x - defect.center[0], y - defect.center[1]
        angle = np.arctan2(dy, dx)
        wobble = sum(a * np.cos(k * angle + ph) for k, a, ph in defect.harmonics)
        edge = defect.radius * (1 + wobble)
        soft = defect.softness * defect.radius
        t = np.clip((edge - np.hypot(dx, dy)) / soft + 0.5, 0.0, 1.0)
        alpha[near] = t * t * (3 - 2 * t)  # smoothstep: a soft blob, 0.5 on the nominal edge
        return alpha
    near_alpha = np.zeros(x.shape)
    for points, width in zip(defect.polylines, defect.widths, strict=True):
        coverage = _coverage(_polyline_distance(x, y, points) - width / 2, pixel)
        near_alpha = np.maximum(near_alpha, coverage)
    alpha[near] = near_alpha
    return alpha


def _defect_extent(defect: Defect) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corner of the defect's bounding box."""
    if defect.kind == "stain":
        reach = defect.radius * (1 + defect.harmonics[:, 1].sum() + defect.softness / 2)
        return defect.center - reach, defect.center + reach
    points = np.vstack(defect.polylines)
    pad = max(defect.widths) / 2
    return points.min(axis=0) - pad, points.max(axis=0) + pad


def _shifted(defect: Defect, shift: np.ndarray) -> Defect:
    if defect.kind == "stain":
        defect.center = defect.center + shift
    else:
        defect.polylines = [points + shift for points in defect.polylines]
    return defect


def _place_defect(rng: np.random.Generator, spec: ItemSpec, p: RenderParams) -> Defect:
    """Draw defects at random places until one lies on the part, clear of holes and label,
    with a mask area in `defect_area`."""
    n = spec.image_size
    x, y = _frame_grid(n)
    forbidden = _part_interior_sd(spec, x, y, p) > -p.defect_margin
    room = p.part_half_size - p.defect_edge_margin
    for _ in range(p.defect_max_tries):
        if spec.label == "stain":
            defect = _sample_stain(rng, p)
        else:
            defect = _sample_polyline_defect(rng, spec.label, p)
        low, high = _defect_extent(defect)
        if (high - low > 2 * room).any():
            continue
        defect = _shifted(defect, rng.uniform(-room - low, room - high))
        alpha = _defect_alpha(defect, x, y, 1.0 / n)
        area = float((alpha >= 0.5).mean())
        if p.defect_area[0] <= area <= p.defect_area[1] and not (alpha[forbidden] > 0).any():
            return defect
    raise RuntimeError(
        f"could not place a {spec.label!r} defect in {p.defect_max_tries} tries: the defect "
        "size ranges in RenderParams do not fit `defect_area` or the part; widen them"
    )


def _sample_view(
    rng: np.random.Generator, side: float, parallax: float, shear: float, p: RenderParams
) -> ViewSpec:
    return ViewSpec(
        offset=side * parallax / 2,
        shear=side * shear / 2,
        gain_rgb=_uniform(rng, p.exposure)
        * rng.uniform(1 - p.white_balance, 1 + p.white_balance, 3),
        shading_slope=rng.uniform(-p.shading_gradient, p.shading_gradient, size=2),
        highlight_center=rng.uniform(-0.5, 0.5, size=2),
        highlight_radius=_uniform(rng, p.highlight_radius),
        highlight_strength=_uniform(rng, p.highlight_strength),
        defect_strength=_uniform(rng, p.defect_view_strength),
        noise_seed=int(rng.integers(2**31)),
    )


def sample_item_spec(
    seed: int, index: int, label: str, image_size: int = 64, params: RenderParams | None = None
) -> ItemSpec:
    """Draw everything random about item `index` of the set with `seed`.

    The nuisance (part, pose, cameras) comes from its own stream and is the same whatever the
    label; the defect comes from a second stream.
    """
    p = params or RenderParams()
    if label != GOOD and label not in DEFECT_KINDS:
        raise ValueError(f"unknown demo class {label!r}; choose from {DEFAULT_CLASSES}")
    rng = np.random.default_rng([seed, index, 0])
    gray = _uniform(rng, p.part_gray)
    part_rgb = gray * (1 + rng.uniform(-p.part_tint, p.part_tint, size=3))
    texture = _sample_texture(rng, image_size * p.supersample, p)

    n_holes = int(rng.integers(p.holes[0], p.holes[1] + 1))
    holes = np.zeros((n_holes, 4))
    corners = np.array([(-1, -1), (1, -1), (-1, 1), (1, 1)], dtype=float)
    corners = corners[rng.permutation(len(corners))[:n_holes]]
    for h, corner in enumerate(corners):
        center = corner * (p.part_half_size - p.hole_inset) + rng.uniform(-1, 1, 2) * p.hole_jitter
        holes[h] = (*center, _uniform(rng, p.hole_radius), _uniform(rng, p.hole_gray))

    has_label = rng.random() < p.label_probability
    width, height = _uniform(rng, p.label_size[0]), _uniform(rng, p.label_size[1])
    reach = p.part_half_size - p.label_inset
    x0, y0 = rng.uniform(-reach, reach - width), rng.uniform(-reach, reach - height)
    label_box = np.array([x0, y0, x0 + width, y0 + height]) if has_label else None
    label_colors = np.array([_uniform(rng, p.label_gray), _uniform(rng, p.label_print_gray)])
    label_bits = rng.random(p.label_grid) < p.label_ink_share

    background_gray = _uniform(rng, p.background_gray)
    jitter = rng.uniform(1 - p.color_jitter, 1 + p.color_jitter, size=3)
    background_rgb = background_gray * jitter
    background_slope = rng.uniform(-p.background_gradient, p.background_gradient, size=2)
    rotation = np.deg2rad(rng.uniform(-p.rotation_deg, p.rotation_deg))
    translation = rng.uniform(-p.translation, p.translation, size=2)
    scale = 1 + rng.uniform(-p.scale_jitter, p.scale_jitter)
    parallax = _uniform(rng, p.parallax)
    shear = rng.uniform(-p.parallax_shear, p.parallax_shear)
    views = {
        name: _sample_view(rng, side, parallax, shear, p)
        for name, side in zip(VIEWS, (-1.0, 1.0), strict=True)
    }
    spec = ItemSpec(
        label=label,
        image_size=image_size,
        part_rgb=part_rgb,
        texture=texture,
        holes=holes,
        label_box=label_box,
        label_colors=label_colors,
        label_bits=label_bits,
        background_rgb=background_rgb,
        background_slope=background_slope,
        rotation=rotation,
        translation=translation,
        scale=scale,
        views=views,
        defect=None,
    )
    if label != GOOD:
        spec.defect = _place_defect(np.random.default_rng([seed, index, 1]), spec, p)
    return spec


# ----------------------------------------------------------------------------- rendering


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
        paper = _coverage(-inside, pixel)[:, None]
        color[near] += paper * (_label_gray(spec, xs, ys, p)[:, None] - color[near])
    for hx, hy, hr, gray in spec.holes:
        reach = hr + p.hole_rim_width + pixel
        near = _near(x, y, (hx - reach, hy - reach), (hx + reach, hy + reach))
        distance = np.hypot(x[near] - hx, y[near] - hy)
        rim_sd = np.abs(distance - hr - p.hole_rim_width / 2) - p.hole_rim_width / 2
        local = color[near]
        local += _coverage(rim_sd, pixel)[:, None] * (p.hole_rim_gray - local)
        local += _coverage(distance - hr, pixel)[:, None] * (gray - local)
        color[near] = local
    part = _coverage(_rounded_square_sd(x, y, p.part_half_size, p.part_corner_radius), pixel)
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


# ----------------------------------------------------------------------------- the data set


def item_name(index: int) -> str:
    """File stem of item `index`."""
    return f"item_{index:05d}"


def class_assignment(n_items: int, classes: Sequence[str], seed: int) -> list[str]:
    """Balanced labels (counts differ by at most one), shuffled deterministically by `seed`."""
    labels = [classes[i % len(classes)] for i in range(n_items)]
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(n_items)
    return [labels[i] for i in order]


def _params_record(
    n_items: int, image_size: int, seed: int, classes: Sequence[str], params: RenderParams
) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "n_items": n_items,
        "image_size": image_size,
        "seed": seed,
        "classes": list(classes),
        "render": json.loads(json.dumps(asdict(params))),  # tuples -> lists, as read back
    }


def _clear_previous(out: Path) -> None:
    """Remove what an earlier generation wrote; refuse if the folder holds anything else."""
    if not out.exists():
        return
    foreign = sorted(e.name for e in out.iterdir() if e.name not in OWNED_ENTRIES)
    if foreign:
        raise FileExistsError(
            f"{out} holds files the demo generator did not write ({', '.join(foreign[:5])}); "
            "choose an empty or new folder for the demo data"
        )
    (out / PARAMS_FILE).unlink(missing_ok=True)  # first: an interrupted run is redone
    for entry in OWNED_ENTRIES:
        path = out / entry
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def generate_demo(
    out_dir: str | Path,
    n_items: int = 600,
    image_size: int = 64,
    seed: int = 0,
    classes: Sequence[str] = DEFAULT_CLASSES,
    progress: bool = True,
    params: RenderParams | None = None,
) -> Path:
    """Render the demo set into `out_dir` (replacing an earlier demo set there); return it."""
    p = params or RenderParams()
    classes = tuple(classes)
    unknown = [c for c in classes if c != GOOD and c not in DEFECT_KINDS]
    if unknown or not classes:
        raise ValueError(
            f"demo classes must be a non-empty subset of {DEFAULT_CLASSES}, got {classes}"
        )
    if n_items < 1 or image_size < 8:
        raise ValueError(f"need n_items >= 1 and image_size >= 8, got {n_items}, {image_size}")
    out = Path(out_dir)
    _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = class_assignment(n_items, classes, seed)
    for index in tqdm(range(n_items), desc="demo data", unit="item", disable=not progress):
        label = labels[index]
        spec = sample_item_spec(seed, index, label, image_size, p)
        for view, (image, mask) in render_item(spec, p).items():
            stem = f"{item_name(index)}.png"
            _save_png(image, out / view / label / stem)
            if mask is not None:
                _save_png(mask.astype(np.uint8) * 255, out / "masks" / view / label / stem)
    (out / README_FILE).write_text(
        f"Demo data set written by anomaly_vit.data.demo (format {FORMAT_VERSION}): a simulated "
        f"stereo inspection rig, seed {seed}, {n_items} items of {image_size}x{image_size} RGB "
        f"pixels, classes {', '.join(classes)} (balanced). Each item has a left and a right view "
        "(left/<class>/, right/<class>/) with pose, parallax, exposure, highlight, noise and blur "
        "nuisance; defective views have a pixel mask (masks/<view>/<class>/, 255 = defect). "
        "Regenerate with: python -m anomaly_vit.data.demo --out <dir>.\n"
    )
    record = _params_record(n_items, image_size, seed, classes, p)
    (out / PARAMS_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out


def ensure_demo(out_dir: str | Path, **kwargs) -> Path:
    """Generate the demo set unless `out_dir` already holds a complete one with these parameters."""
    out = Path(out_dir)
    wanted = _params_record(
        kwargs.get("n_items", 600),
        kwargs.get("image_size", 64),
        kwargs.get("seed", 0),
        tuple(kwargs.get("classes", DEFAULT_CLASSES)),
        kwargs.get("params") or RenderParams(),
    )
    try:
        found = json.loads((out / PARAMS_FILE).read_text())
    except (OSError, ValueError):
        found = None
    if found == wanted and (out / README_FILE).is_file():
        return out
    return generate_demo(out, **kwargs)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: python -m anomaly_vit.data.demo --out data/demo --n-items 600 --size 64 --seed 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/demo", help="output folder (default: data/demo)")
    parser.add_argument("--n-items", type=int, default=600, help="physical items (default: 600)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--classes",
        nargs="+",
        default=list(DEFAULT_CLASSES),
        help=f"classes to render (default: {' '.join(DEFAULT_CLASSES)})",
    )
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    kwargs = dict(
        n_items=args.n_items,
        image_size=args.size,
        seed=args.seed,
        classes=tuple(args.classes),
        progress=not args.no_progress,
    )
    try:
        out = generate_demo(args.out, **kwargs) if args.force else ensure_demo(args.out, **kwargs)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    print(f"demo data in {out}")


if __name__ == "__main__":
    main()

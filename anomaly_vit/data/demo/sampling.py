"""Everything random about one demo item: part, texture, holes, label, pose, cameras, defect."""

from __future__ import annotations

import numpy as np

from anomaly_vit.data.demo.fields import (
    _box_blur_wrapped,
    _frame_grid,
    _near,
    _rounded_square_sd,
    _sample_wrapped,
    _uniform,
)
from anomaly_vit.data.demo.params import (
    CURVE_POINTS,
    DEFAULT_CLASSES,
    DEFECT_KINDS,
    GOOD,
    VIEWS,
    Defect,
    ItemSpec,
    RenderParams,
    ViewSpec,
)
from anomaly_vit.data.synthetic.geometry import (
    coverage,
    harmonic_wobble,
    polyline_distance,
    quadratic_bezier,
    walk,
)


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
        curve = quadratic_bezier(start, control, end, CURVE_POINTS)
        bright = rng.random() < p.scratch_bright_probability
        gray = _uniform(rng, p.scratch_bright_gray if bright else p.scratch_dark_gray)
        return Defect(kind, [curve], [_uniform(rng, p.scratch_width)], np.full(3, gray))

    def crack_walk(
        origin: np.ndarray, direction: float, length: float, segments: int
    ) -> np.ndarray:
        zigzag = (-1.0) ** np.arange(segments) * rng.choice([-1.0, 1.0])
        zigzag *= rng.uniform(p.crack_jag_rad[0], p.crack_jag_rad[1], size=segments)
        bend = np.cumsum(rng.normal(0, p.crack_drift_rad, size=segments))
        return walk(origin, direction + bend + zigzag, length / segments)

    length = _uniform(rng, p.crack_length)
    n_segments = int(rng.integers(p.crack_segments[0], p.crack_segments[1] + 1))
    main = crack_walk(start, heading, length, n_segments)
    width = _uniform(rng, p.crack_width)
    polylines, widths = [main], [width]
    for _ in range(int(rng.integers(p.crack_branches[0], p.crack_branches[1] + 1))):
        root = main[int(rng.integers(1, n_segments))]
        side = rng.choice([-1.0, 1.0]) * _uniform(rng, p.crack_branch_angle_rad)
        branch_length = length * _uniform(rng, p.crack_branch_length)
        polylines.append(crack_walk(root, heading + side, branch_length, max(2, n_segments // 3)))
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
        wobble = harmonic_wobble(angle, *defect.harmonics.T)
        edge = defect.radius * (1 + wobble)
        soft = defect.softness * defect.radius
        t = np.clip((edge - np.hypot(dx, dy)) / soft + 0.5, 0.0, 1.0)
        alpha[near] = t * t * (3 - 2 * t)  # smoothstep: a soft blob, 0.5 on the nominal edge
        return alpha
    near_alpha = np.zeros(x.shape)
    for points, width in zip(defect.polylines, defect.widths, strict=True):
        stroke = coverage(polyline_distance(x, y, points) - width / 2, pixel)
        near_alpha = np.maximum(near_alpha, stroke)
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

"""The demo renderer's knobs (`RenderParams`) and what is drawn per item (the specs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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

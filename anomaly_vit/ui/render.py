"""Pictures and HTML of the page: the defect outlined, the map overlaid, the verdicts, the ROC.

Numbers in, pixels or markup out; every picture is at the photo's own resolution.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from PIL import Image

from anomaly_vit.ui.counts import Confusion

OUTLINE_RGB = (255, 32, 32)
# anchor colours of matplotlib's "inferno", dark to bright (the map overlay's colour scale)
INFERNO_ANCHORS = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32
)
# 256 colours interpolated between the anchors: a map value's colour is one table look-up
COLOUR_LUT = (
    np.stack(
        [
            np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(INFERNO_ANCHORS)), channel)
            for channel in INFERNO_ANCHORS.T
        ],
        axis=1,
    )
    .round()
    .astype(np.uint8)
)


def outline(photo_hw3: np.ndarray, mask_hw: np.ndarray, width_px: int) -> np.ndarray:
    """The photo with the border of `mask` drawn `width_px` thick (inside the mask's edge)."""
    if photo_hw3.shape[:2] != mask_hw.shape:
        raise ValueError(f"photo {photo_hw3.shape[:2]} and mask {mask_hw.shape} differ in size")
    inside = mask_hw.astype(bool)
    core = inside
    for _ in range(max(1, int(width_px))):
        core = _erode(core)
    out = photo_hw3.copy()
    out[inside & ~core] = OUTLINE_RGB
    return out


def _erode(mask_hw: np.ndarray) -> np.ndarray:
    """4-neighbour erosion; pixels at the image border count as outside."""
    padded = np.pad(mask_hw, 1, constant_values=False)
    return (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )


def overlay(
    photo_hw3: np.ndarray, map_hw: np.ndarray, value_range: tuple[float, float], alpha: float
) -> np.ndarray:
    """The map in inferno colours blended over the photo; `value_range` maps to dark..bright
    (NaN, where the map has no value, is dark)."""
    if photo_hw3.shape[:2] != map_hw.shape:
        raise ValueError(f"photo {photo_hw3.shape[:2]} and map {map_hw.shape} differ in size")
    lo, hi = value_range
    unit_hw = (map_hw.astype(np.float32) - lo) * (1.0 / max(hi - lo, 1e-12))
    np.clip(unit_hw, 0.0, 1.0, out=unit_hw)
    np.nan_to_num(unit_hw, copy=False, nan=0.0)  # no map value (outside the part): darkest
    colour_hw3 = COLOUR_LUT[np.rint(unit_hw * (len(COLOUR_LUT) - 1)).astype(np.uint8)]
    photo = Image.fromarray(np.ascontiguousarray(photo_hw3, dtype=np.uint8))
    return np.asarray(Image.blend(photo, Image.fromarray(colour_hw3), float(alpha)))


def map_range(map_hw: np.ndarray, map_kind: str | None) -> tuple[float, float]:
    """The values spanning the overlay's colours: 0..1 for a probability map (`tokens`), the
    photo's own min..max for the others (their scale is the model's, not a probability)."""
    if map_kind == "tokens":
        return 0.0, 1.0
    if not np.isfinite(map_hw).any():
        return 0.0, 1.0
    return float(np.nanmin(map_hw)), float(np.nanmax(map_hw))


def verdict_text(score: float, threshold: float, label: str, is_defect: bool) -> str:
    """One line: the verdict and the score against the threshold."""
    sign = "≥" if is_defect else "<"
    return f"{label.upper()}: defect score {score:.4f} {sign} threshold {threshold:.4f}"


def confusion_html(counts: Confusion | None, n_labelled: int, problems: int) -> str:
    """The confusion counts of the labelled set at the slider's threshold."""
    if counts is None:
        return "<p>No labelled set scored yet.</p>"
    cells = [("tp", "defects caught"), ("fn", "escapes"), ("fp", "false alarms")]
    cells.append(("tn", "good passed"))
    rows = "".join(
        f'<tr><td>{words}</td><td id="count-{key}" data-count="{getattr(counts, key)}">'
        f"{getattr(counts, key)}</td></tr>"
        for key, words in cells
    )
    rates = (
        f"recall {_percent(counts.recall)}, false alarms {_percent(counts.false_alarm_rate)} "
        f"at threshold {counts.threshold:.4f}"
    )
    skipped = f"; {problems} photo(s) could not be read" if problems else ""
    return (
        f'<div id="confusion"><p>{n_labelled} labelled photos{skipped}</p>'
        f"<table>{rows}</table><p>{rates}</p></div>"
    )


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f} %"


def roc_svg(points: Sequence[tuple[float, float]], current: Confusion | None, size_px: int) -> str:
    """The labelled set's ROC curve with the current threshold's point, as inline SVG."""
    if not points:
        return ""
    pad = 28
    side = size_px - 2 * pad

    def xy(fpr: float, tpr: float) -> str:
        return f"{pad + fpr * side:.1f},{pad + (1 - tpr) * side:.1f}"

    path = " ".join(xy(x, y) for x, y in points)
    dot = ""
    if current is not None and current.recall == current.recall:
        fpr = (
            current.false_alarm_rate if current.false_alarm_rate == current.false_alarm_rate else 0
        )
        cx, cy = xy(fpr, current.recall).split(",")
        dot = f'<circle id="roc-point" cx="{cx}" cy="{cy}" r="5" fill="#d62728"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size_px}" height="{size_px}" '
        f'role="img" aria-label="ROC curve">'
        f'<rect x="{pad}" y="{pad}" width="{side}" height="{side}" fill="none" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad + side}" x2="{pad + side}" y2="{pad}" stroke="#ccc" '
        f'stroke-dasharray="4"/>'
        f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>{dot}'
        f'<text x="{pad + side / 2}" y="{size_px - 6}" text-anchor="middle" font-size="11">'
        f"false alarm rate</text>"
        f'<text x="10" y="{pad + side / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 10 {pad + side / 2})">recall</text></svg>'
    )


def escape(text: str) -> str:
    return html.escape(text, quote=True)

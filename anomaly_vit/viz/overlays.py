"""Pictures of attention maps: overlays on images with the defect contour, probe grids, evolutions.

Matplotlib with the Agg canvas only (no pyplot, no global figure state, safe in callbacks and
headless runs). Figures are returned; `figure_to_array` turns one into an HxWx3 uint8 array for
TensorBoard and `save_figure` writes one atomically (`rundir.atomic_write`).

Inputs may be numpy arrays or torch tensors. Images: [C, H, W] (C = 1 or 3), [H, W, C] or
[H, W]; uint8 is read as 0..255, float images outside [0, 1] (e.g. normalised) are min-max
scaled per image for display. Maps are never stretched per panel in a figure: every panel of a
map kind shares one colour scale (from 0, or the kind's minimum if negative, to its maximum over
the figure; in the column title), so a flat map looks flat, beside a peaked one too. Numbers in,
pictures out: a caller may give one score per panel (`panel_scores`, e.g. the share of the map in
its top 5 % of pixels, `maps.scores.peak_share`), written on the panel as "<name>: 0.42". Long
figure titles are wrapped to the figure's width.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from anomaly_vit.rundir import atomic_write

ArrayLike = np.ndarray | torch.Tensor
RGB_CHANNELS = 3
UINT8_MAX = 255
MASK_LEVEL = 0.5  # contour level between the 0 and 1 of a mask
CAPTION_SPACE = 0.15  # extra figure height per row for captions, as a share of a panel
CHAR_WIDTH_EM = 0.62  # a generous mean glyph width of the default sans-serif font, in em
POINTS_PER_INCH = 72
ValueRange = tuple[float, float]


def to_numpy(array: ArrayLike) -> np.ndarray:
    """A numpy array from an array or a (possibly GPU, bf16 or grad-tracking) tensor."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()
        return tensor.numpy()
    return np.asarray(array)


def display_image(image: ArrayLike) -> np.ndarray:
    """An image as HxWx3 float in [0, 1] (see the module docstring for accepted layouts)."""
    img = to_numpy(image)
    if (
        img.ndim == 3
        and img.shape[0] in (1, RGB_CHANNELS)
        and img.shape[-1] not in (1, RGB_CHANNELS)
    ):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 1:
        img = np.repeat(img, RGB_CHANNELS, axis=-1)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / UINT8_MAX
    img = img.astype(np.float32)
    low, high = float(img.min()), float(img.max())
    if low < 0.0 or high > 1.0:
        img = (img - low) / (high - low) if high > low else np.zeros_like(img)
    return img


def value_range(maps: ArrayLike | Sequence[ArrayLike]) -> ValueRange:
    """The shared colour scale of one map kind: from 0 (or the minimum, if negative) to the
    maximum over every value of `maps`, so a flat non-negative map shows one flat colour."""
    values = [to_numpy(m).astype(np.float32) for m in maps]
    low, high = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    return min(low, 0.0), high


def display_map(map_hw: ArrayLike, scale: ValueRange | None = None) -> np.ndarray:
    """A map scaled to [0, 1] for display by `scale` (min, max), by default its own min and max
    (a constant map becomes zeros); values outside the scale are clipped."""
    values = to_numpy(map_hw).astype(np.float32)
    low, high = scale if scale is not None else (float(values.min()), float(values.max()))
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def mask_edges(mask_hw: ArrayLike) -> np.ndarray:
    """The boundary pixels of a boolean mask (inside the mask, next to a pixel outside)."""
    mask = to_numpy(mask_hw).astype(bool)
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    return mask & ~interior


def overlay_array(
    image: ArrayLike,
    map_hw: ArrayLike,
    mask_hw: ArrayLike | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    contour_rgb: tuple[int, int, int] = (255, 255, 255),
    scale: ValueRange | None = None,
) -> np.ndarray:
    """The image blended with the coloured map (`display_map` scale), mask boundary drawn:
    HxWx3 uint8."""
    rgb_hw3 = display_image(image)
    colour_hw3 = colormaps[cmap](display_map(map_hw, scale))[..., :RGB_CHANNELS]
    blend_hw3 = (1.0 - alpha) * rgb_hw3 + alpha * colour_hw3
    out = np.clip(np.rint(blend_hw3 * UINT8_MAX), 0, UINT8_MAX).astype(np.uint8)
    if mask_hw is not None:
        out[mask_edges(mask_hw)] = np.asarray(contour_rgb, dtype=np.uint8)
    return out


def draw_overlay(
    ax: Axes,
    image: ArrayLike,
    map_hw: ArrayLike | None = None,
    mask_hw: ArrayLike | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    contour_color: str = "white",
    contour_width: float = 1.0,
    scale: ValueRange | None = None,
) -> None:
    """Draw the image, the map on top (if any; coloured on `scale`, by default its own min and
    max) and the mask contour (if any) on `ax`."""
    ax.imshow(display_image(image), interpolation="nearest")
    if map_hw is not None:
        ax.imshow(display_map(map_hw, scale), cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
    if mask_hw is not None:
        mask = to_numpy(mask_hw).astype(np.float32)
        if mask.max() > 0.0 and mask.min() < 1.0:  # a boundary exists
            ax.contour(mask, levels=[MASK_LEVEL], colors=contour_color, linewidths=contour_width)
    ax.set_xticks([])
    ax.set_yticks([])


def label_panel(ax: Axes, name: str, value: float) -> None:
    """A panel's score written on it as "<name>: <value>" (top left, on a light box)."""
    ax.text(
        0.03,
        0.97,
        f"{name}: {value:.2f}",
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize="x-small",
        bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1.0},
    )


def _scale_text(scale: ValueRange) -> str:
    return f"scale {scale[0]:.3g} to {scale[1]:.3g}"


def set_title(fig: Figure, title: str, fontsize: float = 12.0) -> None:
    """`fig.suptitle`, each line wrapped to fit the figure's width."""
    width_pt = fig.get_figwidth() * POINTS_PER_INCH
    chars = max(10, int(width_pt / (fontsize * CHAR_WIDTH_EM)))
    lines = [textwrap.fill(line, chars) for line in title.splitlines()]
    fig.suptitle("\n".join(lines), fontsize=fontsize)


def _class_name(label: int | str, class_names: Sequence[str] | None) -> str:
    if isinstance(label, str) or class_names is None:
        return str(label)
    return class_names[int(label)]


def _row_caption(
    row: int,
    true_labels: Sequence | ArrayLike | None,
    pred_labels: Sequence | ArrayLike | None,
    probs: ArrayLike | None,
    class_names: Sequence[str] | None,
) -> str:
    lines = []
    if true_labels is not None:
        lines.append(f"true: {_class_name(_item(true_labels, row), class_names)}")
    if pred_labels is not None:
        pred = _item(pred_labels, row)
        text = f"pred: {_class_name(pred, class_names)}"
        if probs is not None:
            row_probs = to_numpy(probs)[row]
            p = float(row_probs[int(pred)]) if np.ndim(row_probs) else float(row_probs)
            text += f" ({p:.2f})"
        lines.append(text)
    return "\n".join(lines)


def _item(values: Sequence | ArrayLike, index: int) -> int | str:
    value = values[index]
    if isinstance(value, str):
        return value
    return int(to_numpy(value)) if isinstance(value, torch.Tensor) else value


def _new_figure(rows: int, cols: int, panel_in: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(
        figsize=(cols * panel_in, rows * panel_in * (1.0 + CAPTION_SPACE)), layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    return fig, axes


def probe_grid_figure(
    images: Sequence[ArrayLike] | ArrayLike,
    maps_by_kind: Mapping[str, ArrayLike],
    masks: Sequence[ArrayLike | None] | ArrayLike | None = None,
    true_labels: Sequence | ArrayLike | None = None,
    pred_labels: Sequence | ArrayLike | None = None,
    probs: ArrayLike | None = None,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    panel_in: float = 2.0,
    title: str | None = None,
    panel_scores: Mapping[str, Sequence[float]] | None = None,
    panel_score_name: str = "score",
) -> Figure:
    """Rows = probes; columns = the image, then one overlay per map kind ([P, H, W] each).

    Each row's image is captioned with its true class and predicted class with probability
    (`probs`: [P] probability of the prediction, or [P, K] class probabilities). Each kind's
    panels share one colour scale (in the column title); `panel_scores` {kind: [P] numbers}
    are written on the panels as "<panel_score_name>: <value>".
    """
    num_probes = len(images)
    kinds = list(maps_by_kind)
    scales = {kind: value_range(maps_by_kind[kind]) for kind in kinds}
    fig, axes = _new_figure(num_probes, 1 + len(kinds), panel_in)
    for row in range(num_probes):
        mask = masks[row] if masks is not None else None
        draw_overlay(axes[row, 0], images[row], None, mask)
        axes[row, 0].set_xlabel(
            _row_caption(row, true_labels, pred_labels, probs, class_names), fontsize="small"
        )
        for col, kind in enumerate(kinds, start=1):
            map_hw = maps_by_kind[kind][row]
            draw_overlay(axes[row, col], images[row], map_hw, mask, alpha, cmap, scale=scales[kind])
            if panel_scores is not None:
                label_panel(axes[row, col], panel_score_name, float(panel_scores[kind][row]))
            if row == 0:
                axes[row, col].set_title(f"{kind}\n{_scale_text(scales[kind])}", fontsize="small")
    axes[0, 0].set_title("image", fontsize="small")
    if title:
        set_title(fig, title)
    return fig


def evolution_figure(
    images: Sequence[ArrayLike] | ArrayLike,
    maps_by_epoch: Mapping[int, ArrayLike],
    masks: Sequence[ArrayLike | None] | ArrayLike | None = None,
    kind: str = "rollout",
    alpha: float = 0.5,
    cmap: str = "jet",
    panel_in: float = 2.0,
    panel_scores: Mapping[int, Sequence[float]] | None = None,
    panel_score_name: str = "score",
) -> Figure:
    """Rows = probes; columns = epochs (ascending), one map kind: maps_by_epoch[e] is [P, H, W].
    Every panel shares one colour scale (in the title); `panel_scores` {epoch: [P] numbers} are
    written on the panels as "<panel_score_name>: <value>"."""
    epochs = sorted(maps_by_epoch)
    if not epochs:
        raise ValueError("evolution_figure needs maps from at least one epoch")
    num_probes = len(images)
    scale = value_range([maps_by_epoch[epoch] for epoch in epochs])
    fig, axes = _new_figure(num_probes, len(epochs), panel_in)
    for col, epoch in enumerate(epochs):
        for row in range(num_probes):
            mask = masks[row] if masks is not None else None
            map_hw = maps_by_epoch[epoch][row]
            draw_overlay(axes[row, col], images[row], map_hw, mask, alpha, cmap, scale=scale)
            if panel_scores is not None:
                label_panel(axes[row, col], panel_score_name, float(panel_scores[epoch][row]))
        axes[0, col].set_title(f"epoch {epoch}", fontsize="small")
    set_title(fig, f"{kind} over training ({_scale_text(scale)})")
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a figure to an HxWx3 uint8 array (e.g. for TensorBoard `add_image`, dataformats HWC)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :RGB_CHANNELS].copy()


def save_png(array_hw3: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an HxWx3 uint8 array (e.g. from `figure_to_array`) as a PNG, atomically."""
    return atomic_write(path, lambda handle: Image.fromarray(array_hw3).save(handle, format="PNG"))


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write `fig` to `path` atomically (format from the suffix); parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".") or "png"
    atomic_write(path, lambda handle: fig.savefig(handle, format=fmt, dpi=dpi))
    return path

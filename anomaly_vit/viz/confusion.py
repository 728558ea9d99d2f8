"""Draw a confusion matrix (counts and row-normalised colour) as a figure or an RGB array."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from anomaly_vit.rundir import atomic_write  # noqa: E402


def confusion_figure(matrix: list[list[int]] | np.ndarray, classes: list[str], title: str = ""):
    """Rows are true classes, columns predicted; colour is the row-normalised share."""
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.7 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size), constrained_layout=True)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}",
                ha="center",
                va="center",
                color="white" if shares[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return fig


def save_confusion(matrix, classes: list[str], path: str | Path, title: str = "") -> Path:
    fig = confusion_figure(matrix, classes, title)
    try:
        return atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
    finally:
        plt.close(fig)


def confusion_rgb(matrix, classes: list[str], title: str = "", cell: int = 44) -> np.ndarray:
    """HxWx3 uint8 rendering for TensorBoard's add_image, drawn with PIL in a few milliseconds
    (the matplotlib figure takes ~80 ms, too much for every validation). Same encoding as
    `confusion_figure`: rows true, columns predicted, count in each cell, Blues colour = row share.
    """
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    colours = (matplotlib.colormaps["Blues"](shares)[..., :3] * 255).astype(np.uint8)
    font = _font(12)
    names = [str(c) for c in classes]
    label_w = 8 + max(int(font.getlength(n)) for n in names)
    n, line = len(names), 16
    left, top = 4 + line + label_w, 8 + (line if title else 0)
    grid = n * cell
    width = max(left + grid + 8, 16 + int(font.getlength(title)))
    height = top + grid + 8 + label_w + line
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((width / 2, 4), title, fill="black", font=font, anchor="mt")
    for i in range(n):
        for j in range(n):
            x, y = left + j * cell, top + i * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=tuple(colours[i, j].tolist()))
            ink = "white" if shares[i, j] > 0.5 else "black"
            draw.text((x + cell / 2, y + cell / 2), str(int(counts[i, j])), fill=ink, font=font,
                      anchor="mm")  # fmt: skip
        draw.text((left - 6, top + i * cell + cell / 2), names[i], fill="black", font=font,
                  anchor="rm")  # fmt: skip
    draw.rectangle((left - 1, top - 1, left + grid, top + grid), outline="black")
    true = _upright(font, "true", grid, line, anchor="mm")
    image.paste("black", (2, top), true)
    for j, name in enumerate(names):  # predicted labels written upwards under their column
        label = _upright(font, name, label_w, line, anchor="rm")
        image.paste("black", (left + j * cell + (cell - line) // 2, top + grid + 4), label)
    draw.text((left + grid / 2, height - 2), "predicted", fill="black", font=font, anchor="mb")
    return np.asarray(image).copy()


def _upright(font, text: str, length: int, line: int, anchor: str) -> Image.Image:
    """A mask of `text` turned 90 degrees (read bottom to top), `line` wide, `length` tall."""
    mask = Image.new("L", (length, line), 0)
    x = length - 2 if anchor == "rm" else length / 2
    ImageDraw.Draw(mask).text((x, line / 2), text, fill=255, font=font, anchor=anchor)
    return mask.rotate(90, expand=True)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """Matplotlib's own DejaVu Sans (always installed with it) at `size` px."""
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)

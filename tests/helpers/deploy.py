"""Deploy tests' helpers: photos of several sizes and modes, and `explain`'s view of them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.config import compose_config

# (name, PIL mode, (width, height)) of the photos made from demo images
PHOTO_VARIANTS = (
    ("gray_wide", "L", (96, 40)),
    ("rgb_tall", "RGB", (50, 90)),
    ("rgba_square", "RGBA", (70, 70)),
    ("rgb_small", "RGB", (33, 47)),
)


def demo_dir(run_dir: Path) -> Path:
    """The demo images a smoke run trained on (`tests/conftest.py` layout)."""
    return run_dir.parents[2] / "data" / "demo_smoke"


def photo_folder(run_dir: Path, out: Path, classes=("crack", "good", "scratch")) -> list[Path]:
    """Demo images of `classes` saved as every `PHOTO_VARIANTS` size and mode into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for label in classes:
        source = sorted((demo_dir(run_dir) / "left" / label).glob("*.png"))[0]
        base = Image.open(source).convert("RGB")
        for name, mode, size in PHOTO_VARIANTS:
            image = base.resize(size, Image.BILINEAR)
            if mode == "RGBA":
                alpha = np.linspace(80, 255, size[0] * size[1]).reshape(size[1], size[0])
                image = image.convert("RGBA")
                image.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
            else:
                image = image.convert(mode)
            path = out / f"{label}_{name}.png"
            image.save(path)
            paths.append(path)
    return paths


def explain_rows(ckpt: Path, folder: Path, out: Path, kind: str) -> dict[str, dict[str, str]]:
    """predictions.csv of `python -m anomaly_vit.explain` (in process) by file name."""
    from anomaly_vit.explain.command import explain

    cfg = compose_config(
        "explain",
        [f"ckpt_path={ckpt}", f"input={folder}", "overlays=false", f"kinds=[{kind}]"],
        out,
    )
    explain(cfg)
    with (out / "predictions.csv").open(newline="") as handle:
        return {Path(row["path"]).name: row for row in csv.DictReader(handle)}


def explain_maps(ckpt: Path, paths: list[Path], kind: str) -> dict[str, np.ndarray]:
    """`explain`'s map of `kind` for each photo, taken back to the photo's pixels."""
    import torch

    from anomaly_vit.data.image_io import load_rgb
    from anomaly_vit.data.resize import placement
    from anomaly_vit.explain.checkpoint import load_classifier
    from anomaly_vit.explain.inputs import InputImage, load_input, training_resize
    from anomaly_vit.maps.forward import image_size_hw
    from anomaly_vit.maps.kinds import explain_images
    from anomaly_vit.maps.readout import map_to_original

    model, info = load_classifier(ckpt)
    size_hw, resize = image_size_hw(model), training_resize(info)
    maps = {}
    for path in paths:
        fitted, _ = load_input(InputImage(path, path.stem), size_hw, resize)
        images = torch.tensor(fitted).permute(2, 0, 1)[None]
        explanation = explain_images(model, images, [kind], good_class=model.good_index)
        where = placement(load_rgb(path).shape[:2], size_hw, resize)
        maps[path.name] = map_to_original(explanation.maps[kind], where)[0].numpy()
    return maps


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps over the pixels finite in both."""
    finite = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[finite].ravel(), b[finite].ravel())[0, 1])

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
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from anomaly_vit.data.demo.params import (
    DEFAULT_CLASSES,
    DEFECT_KINDS,
    FORMAT_VERSION,
    GOOD,
    OWNED_ENTRIES,
    PARAMS_FILE,
    README_FILE,
    RenderParams,
)
from anomaly_vit.data.demo.render import render_item
from anomaly_vit.data.demo.sampling import sample_item_spec
from anomaly_vit.errors import ConfigError


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
        raise ConfigError(
            f"demo classes must be a non-empty subset of {DEFAULT_CLASSES}, got {classes}"
        )
    if n_items < 1 or image_size < 8:
        raise ConfigError(f"need n_items >= 1 and image_size >= 8, got {n_items}, {image_size}")
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

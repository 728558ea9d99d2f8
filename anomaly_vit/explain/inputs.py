"""The images the explain command reads: a folder, a class-folder tree, a manifest CSV or one file.

- A folder is searched recursively for images (hidden files and folders are skipped). When every
  image sits in a folder named after one of the model's classes, that folder name is the image's
  true label (a class-folder tree, e.g. ``<input>/<class>/x.png`` or ``<input>/left/<class>/x.png``).
- Masks come from a masks folder (`masks=<dir>`, default ``<input>/masks`` when it exists, never
  read as inputs): the mask of ``<input>/<rel>/x.png`` is ``<masks>/<rel>/x.<any image ext>``,
  else the mask named ``x`` under ``<masks>`` whose folders match the image's best (so
  ``input=data/left masks=data/masks`` pairs ``left/scratch/x`` with ``masks/left/scratch/x``).
- A manifest CSV has the columns ``path,label,item_id[,view,mask]`` (as `ManifestSource` reads
  it); relative paths resolve against the CSV's folder.

Images are brought to the model's input size the way its training did (`data.resize` of the
checkpoint's stored config: letterbox, squash or crop; bilinear, masks nearest).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomaly_vit.data.image_io import (
    IMAGE_EXTENSIONS,
    is_image_file,
    load_mask,
    load_rgb,
)
from anomaly_vit.data.labels import Task, task_label
from anomaly_vit.data.resize import ResizeMode, fit_image, fit_mask
from anomaly_vit.data.sources import ManifestSource
from anomaly_vit.errors import DataError, MissingFileError

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".csv"
DEFAULT_MASKS_DIR = "masks"


@dataclass(frozen=True)
class InputImage:
    """One image to explain: its file, a unique relative name, its true label and mask if known."""

    path: Path
    name: str  # relative name without suffix, unique among the inputs (names the overlay file)
    label: str | None = None
    mask_path: Path | None = None


class _InputManifest(ManifestSource):
    """`ManifestSource` whose errors name the command's `input` key."""

    def key(self, param: str) -> str:
        return "input"


def training_resize(info: dict) -> ResizeMode:
    """How the checkpoint's training brought photos to the input size (`data.resize`; squash
    for checkpoints whose config has no such key)."""
    data = (info.get("config") or {}).get("data") or {}
    return ResizeMode(data.get("resize") or ResizeMode.SQUASH)


def load_input(
    item: InputImage, size_hw: tuple[int, int], resize: ResizeMode = ResizeMode.SQUASH
) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode one input and fit it to `size_hw` like training: (uint8 HxWx3 image, bool HxW mask
    or None).

    Raises `BadImageError` (a ValueError naming the file) for missing or unreadable files.
    """
    image = load_rgb(item.path)
    mask = None if item.mask_path is None else load_mask(item.mask_path, image.shape[:2])
    fitted = fit_image(image, size_hw, resize)
    return fitted, None if mask is None else fit_mask(mask, size_hw, resize)


def find_inputs(
    input_path: str | os.PathLike,
    masks: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    relabel: Callable[[str], str] | None = None,
) -> list[InputImage]:
    """List the images of `input_path` (folder, manifest CSV or image file) with labels and masks.

    `relabel` maps a label of the files (a folder name, a manifest label) to the model's class,
    as training did (`model_labels`: a binary model's `crack/` folder is its defect class)."""
    root = Path(input_path).expanduser()
    if not root.exists():
        raise MissingFileError(
            f"input={root} does not exist: give a folder of images, a manifest CSV "
            "(path,label,item_id[,view,mask]) or an image file."
        )
    masks_dir = _masks_dir(root, masks)
    if root.is_file():
        if root.suffix.lower() == MANIFEST_SUFFIX:
            if masks is not None:
                log.warning("masks=%s is ignored for a manifest: its 'mask' column is used", masks)
            return _manifest_inputs(root, relabel)
        if not is_image_file(root):
            raise DataError(
                f"input={root} is neither an image ({', '.join(sorted(IMAGE_EXTENSIONS))}) nor a "
                "manifest .csv: point input at a folder, a manifest or an image."
            )
        mask = _MaskIndex(masks_dir).find(root, Path(root.name)) if masks_dir else None
        return [InputImage(root, root.stem, None, mask)]
    return _folder_inputs(root, masks_dir, classes, relabel)


def model_labels(info: dict, classes: Sequence[str]) -> Callable[[str], str]:
    """A label of the files -> the model's class, through the task the checkpoint was trained
    for (`data.task`): binary maps every label but the good class to the defect class."""
    data = (info.get("config") or {}).get("data") or {}
    good = str(data.get("good_class", "good"))
    task = Task(str(data.get("task") or Task.MULTICLASS))
    others = [c for c in classes if c != good]
    if task is not Task.BINARY or len(classes) != 2 or good not in classes:
        return lambda label: label
    return lambda label: task_label(label, task, good, others[0])


def _masks_dir(root: Path, masks: str | os.PathLike | None) -> Path | None:
    if masks is None:
        default = root / DEFAULT_MASKS_DIR
        return default if root.is_dir() and default.is_dir() else None
    path = Path(masks).expanduser()
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "does not exist"
        raise MissingFileError(f"masks={path} {problem}: point masks at the folder of mask images.")
    return path


def _visible_images(folder: Path, exclude: Path | None) -> list[Path]:
    exclude = exclude.resolve() if exclude is not None else None
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() != exclude
        )
        found += [here / f for f in sorted(filenames) if is_image_file(here / f)]
    return found


class _MaskIndex:
    """Mask files by relative path without suffix, and by stem."""

    def __init__(self, folder: Path) -> None:
        self.by_rel: dict[str, Path] = {}
        self.by_stem: dict[str, list[Path]] = {}
        for path in _visible_images(folder, exclude=None):
            self.by_rel[path.relative_to(folder).with_suffix("").as_posix()] = path
            self.by_stem.setdefault(path.stem, []).append(path)

    def find(self, image: Path, rel: Path) -> Path | None:
        """The mask at the image's relative path, else the one with its stem whose folders
        match the image's best (e.g. masks/left/scratch/x.png for data/left/scratch/x.jpg)."""
        exact = self.by_rel.get(rel.with_suffix("").as_posix())
        if exact is not None:
            return exact
        candidates = self.by_stem.get(image.stem, [])
        if not candidates:
            return None
        shared = {mask: _shared_tail(image.resolve(), mask.resolve()) for mask in candidates}
        best = max(shared.values())
        winners = [mask for mask, count in shared.items() if count == best]
        if len(winners) > 1:
            log.warning(
                "image '%s' matches %d masks equally well (%s); it gets no mask",
                image,
                len(winners),
                ", ".join(str(m) for m in winners[:3]),
            )
            return None
        return winners[0]


def _shared_tail(image: Path, mask: Path) -> int:
    """How many trailing path parts (suffix dropped) two paths have in common."""
    count = 0
    for a, b in zip(
        reversed(image.with_suffix("").parts), reversed(mask.with_suffix("").parts), strict=False
    ):
        if a != b:
            break
        count += 1
    return count


def _folder_inputs(
    root: Path,
    masks_dir: Path | None,
    classes: Sequence[str] | None,
    relabel: Callable[[str], str] | None = None,
) -> list[InputImage]:
    paths = _visible_images(root, exclude=masks_dir)
    if not paths:
        raise DataError(
            f"input={root} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
            "point input at a folder of images or a manifest CSV."
        )
    relabel = relabel or (lambda label: label)
    # a class-folder tree: every image in a folder named after a class (after the task's
    # mapping), at least one folder named after a model class (so `batch1/` is no label)
    known = set(classes or ())
    class_tree = (
        bool(known)
        and all(p.parent != root and relabel(p.parent.name) in known for p in paths)
        and any(p.parent.name in known for p in paths)
    )
    masks = _MaskIndex(masks_dir) if masks_dir is not None else None
    rels = [p.relative_to(root) for p in paths]
    names = _unique_names(rels)
    return [
        InputImage(
            path=path,
            name=name,
            label=relabel(path.parent.name) if class_tree else None,
            mask_path=masks.find(path, rel) if masks is not None else None,
        )
        for path, rel, name in zip(paths, rels, names, strict=True)
    ]


def _manifest_inputs(
    csv_path: Path, relabel: Callable[[str], str] | None = None
) -> list[InputImage]:
    records = _InputManifest(csv_path=str(csv_path), name="input").scan()
    paths = [Path(r.path) for r in records]
    base = Path(os.path.commonpath([p.resolve().parent for p in paths]))
    names = _unique_names([p.resolve().relative_to(base) for p in paths])
    return [
        InputImage(
            path=path,
            name=name,
            label=relabel(record.label) if relabel else record.label,
            mask_path=Path(record.mask_path) if record.mask_path else None,
        )
        for record, path, name in zip(records, paths, names, strict=True)
    ]


def _unique_names(rels: Sequence[Path]) -> list[str]:
    """Relative paths without suffix; where two clash (a.png, a.jpg) they keep their suffix."""
    stems = [rel.with_suffix("").as_posix() for rel in rels]
    counts = Counter(stems)
    return [
        stem if counts[stem] == 1 else rel.as_posix() for stem, rel in zip(stems, rels, strict=True)
    ]

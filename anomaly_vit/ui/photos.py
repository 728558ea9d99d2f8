"""The photos the page inspects: uploads, a folder, a labelled set; each checked before decoding.

A photo that cannot be used (empty, not an image, truncated, larger than `max_pixels`) gets one
line naming the file and what to do; it is listed on the page and the others go on.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from anomaly_vit.data.image_io import IMAGE_EXTENSIONS, BadImageError, is_image_file, read_image

MANIFEST_COLUMNS = ("path", "label")


class PhotoSetError(ValueError):
    """A folder or manifest the page cannot read; the message names it and what to do."""


@dataclass(frozen=True)
class Photo:
    """One photo to inspect: where it is, the name shown, and its true class when labelled."""

    path: str
    name: str
    label: str | None = None


def folder_photos(folder: str | Path) -> list[Photo]:
    """Every image file under `folder` (recursive, sorted), named by its path inside it."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise PhotoSetError(f"folder '{root}' {problem}: give a folder of photos on this machine")
    photos = [
        Photo(str(p), p.relative_to(root).as_posix())
        for p in sorted(root.rglob("*"))
        if p.is_file() and is_image_file(p)
    ]
    if not photos:
        raise PhotoSetError(
            f"folder '{root}' holds no image files ({' '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return photos


def labelled_photos(source: str | Path, classes: Sequence[str]) -> list[Photo]:
    """Photos with their true class: a folder with one sub-folder per class (named as the
    bundle's classes), or a manifest CSV with columns ``path,label`` (relative paths resolve
    against the CSV's folder)."""
    path = Path(source).expanduser()
    if path.is_file():
        return _manifest_photos(path, classes)
    if not path.is_dir():
        raise PhotoSetError(
            f"labelled set '{path}' does not exist: give a folder with sub-folders "
            f"{list(classes)} or a manifest CSV (columns path,label)"
        )
    photos = []
    for label in classes:
        if (path / label).is_dir():
            photos += [Photo(p.path, f"{label}/{p.name}", label) for p in _maybe(path / label)]
    if not photos:
        raise PhotoSetError(
            f"labelled set '{path}' has no images in sub-folders named {list(classes)} (the "
            "bundle's classes): sort the photos into those, or give a manifest CSV"
        )
    return photos


def _maybe(folder: Path) -> list[Photo]:
    try:
        return folder_photos(folder)
    except PhotoSetError:
        return []


def _manifest_photos(csv_path: Path, classes: Sequence[str]) -> list[Photo]:
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in MANIFEST_COLUMNS if c not in columns]
        if missing:
            raise PhotoSetError(
                f"manifest '{csv_path}' lacks column(s) {missing} (has {columns}): it needs "
                f"{list(MANIFEST_COLUMNS)}"
            )
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    photos = []
    for line, row in enumerate(rows, start=2):
        if row["label"] not in classes:
            raise PhotoSetError(
                f"manifest '{csv_path}' line {line}: label '{row['label']}' is not one of the "
                f"bundle's classes {list(classes)}; fix the label"
            )
        photo_path = Path(row["path"]).expanduser()
        photo_path = photo_path if photo_path.is_absolute() else csv_path.parent / photo_path
        photos.append(Photo(str(photo_path), row["path"], row["label"]))
    if not photos:
        raise PhotoSetError(f"manifest '{csv_path}' has a header but no rows; add photos")
    return photos


def open_photo(path: str | Path, max_pixels: int) -> Image.Image:
    """Decode `path`, refusing one larger than `max_pixels` before decoding it (a huge photo
    or a decompression bomb would take the server's memory). Raises `BadImageError`."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError as err:
        raise BadImageError(
            path,
            f"too large to decode safely (Pillow: {err}) and over the page's limit of "
            f"{max_pixels / 1e6:g} Mpx; {_shrink(max_pixels)}",
        ) from err
    except (OSError, SyntaxError, ValueError, EOFError):
        width = height = 0  # read_image names what is wrong with it
    if width * height > max_pixels:
        raise BadImageError(
            path,
            f"{width} x {height} px ({width * height / 1e6:.3g} Mpx) is over the page's limit "
            f"of {max_pixels / 1e6:g} Mpx; {_shrink(max_pixels)}",
        )
    return read_image(path)[0]


def _shrink(max_pixels: int) -> str:
    return f"downscale it, or start the app with max_pixels=<more than {max_pixels}>"

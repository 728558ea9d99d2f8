"""File-based image sources: paired left/right folders, class folders and CSV manifests.

Each source lists `Record`s cheaply (`scan`) and decodes one record to pixels (`load`, via
`image_io`). Constructor arguments come from the Hydra config (`data.sources.<name>`), so they
are plain types; `name` is set by the datamodule from the config key.

Item ids (the unit of the train/val/test split):

- Folder sources use the file stem as item id, so the left and right views of one item share it.
  A stem must belong to one class only (an error names both folders otherwise).
- A folder source with ``synthetic=True`` (renders, ...) prefixes its item ids with
  ``"<name>:"`` (e.g. ``renders:0001``), so its images never join a real item's split by a chance
  name clash. Set ``item_id_prefix: ""`` when the files are named after the real items they were
  made from: they then share those items' split, which is what prevents leaks.
- A manifest gives item ids explicitly and they are used as written.

What a scan finds wrong but can skip (a folder named like an image) goes to `bad_files`; every
file `load` decodes leaves an `ImageInfo` in `file_info`: the datamodule's data report reads both.
"""

from __future__ import annotations

import csv
import difflib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from anomaly_vit.data.image_io import (
    IMAGE_EXTENSIONS,
    ImageInfo,
    is_image_file,
    load_mask,
    load_rgb_info,
)
from anomaly_vit.data.records import VIEWS_PAIRED, Record, SourceContext

log = logging.getLogger(__name__)

VIEW_SINGLE = "single"
UNPAIRED_POLICIES = ("keep", "drop", "error")
MANIFEST_REQUIRED_COLUMNS = ("path", "label", "item_id")
MANIFEST_OPTIONAL_COLUMNS = ("view", "mask")
MAX_LISTED = 10  # how many offending files an error or warning lists before "... and N more"
LOOKALIKE_CUTOFF = 0.8  # difflib similarity above which two unpaired names look like a pair
DIRECTORY_REASON = (
    "is a directory named like an image file, not an image; rename it or move it out of the "
    "data folder"
)


class SourceError(ValueError):
    """A data source is misconfigured or its files do not match the expected layout."""


def listing(items: Sequence[object], limit: int = MAX_LISTED) -> str:
    """Format items for an error message, at most `limit` of them."""
    shown = ", ".join(str(item) for item in items[:limit])
    more = len(items) - limit
    return f"{shown}, ... and {more} more" if more > 0 else shown


class BaseSource:
    """Common parts of every source: name, synthetic flag, mix weight and `load` via image_io."""

    def __init__(self, name: str = "", synthetic: bool = False, weight: float = 1.0) -> None:
        self.name = name
        self.synthetic = bool(synthetic)
        self.weight = float(weight)
        self.file_info: dict[str, ImageInfo] = {}  # path -> info of every file `load` decoded
        self.bad_files: list[tuple[str, str]] = []  # (path, reason) found by `scan`, skippable
        if not self.weight >= 0:
            raise SourceError(
                f"{self.key('weight')} = {weight}: a mix weight must be >= 0 (0 disables it)"
            )

    def key(self, param: str) -> str:
        """The config key of one of this source's parameters, for error messages."""
        return f"data.sources.{self.name or '<name>'}.{param}"

    def scan(self, context: SourceContext) -> list[Record]:
        raise NotImplementedError

    def load(self, record: Record) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode `record.path` (uint8 HxWx3) and its mask (bool HxW, resized to the image)."""
        image, info = load_rgb_info(record.path)
        self.file_info[record.path] = info
        mask = None if record.mask_path is None else load_mask(record.mask_path, image.shape[:2])
        return image, mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weight={self.weight})"


def _existing_dir(path: str | Path, key: str, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{what} '{path}' ({key}) {problem}: fix {key} in the data config")
    return path


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_by_stem(
    folder: Path, bad_files: list[tuple[str, str]] | None = None
) -> dict[str, Path]:
    """Image files of one folder by stem; two files with one stem (a.png, a.jpg) are an error.

    A directory named like an image is not an image: it goes to `bad_files` when given.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        if path.is_dir():
            if bad_files is not None:
                bad_files.append((str(path), DIRECTORY_REASON))
            continue
        if not path.is_file():
            continue
        if path.stem in found:
            raise SourceError(
                f"two images with the same name '{path.stem}' in '{folder}': "
                f"'{found[path.stem].name}' and '{path.name}'; keep one of them"
            )
        found[path.stem] = path
    return found


class FolderSource(BaseSource):
    """Shared parts of the class-folder layouts: item ids, class filter, masks, stem uniqueness."""

    def __init__(
        self,
        root: str,
        masks_root: str | None = None,
        classes: Sequence[str] | None = None,
        item_id_prefix: str | None = None,
        name: str = "",
        synthetic: bool = False,
        weight: float = 1.0,
    ) -> None:
        super().__init__(name=name, synthetic=synthetic, weight=weight)
        self.root = str(root)
        self.masks_root = None if masks_root is None else str(masks_root)
        self.classes = None if classes is None else [str(c) for c in classes]
        self.item_id_prefix = item_id_prefix

    def item_id(self, stem: str) -> str:
        """Item id of a file stem: the stem, prefixed with "<name>:" for synthetic sources."""
        prefix = self.item_id_prefix
        if prefix is None:
            prefix = f"{self.name}:" if self.synthetic else ""
        if self.synthetic and self.item_id_prefix is None and not self.name:
            raise SourceError(
                f"{type(self).__name__} with synthetic=True needs its name set before scan "
                "(the datamodule sets it from the data.sources key)"
            )
        return f"{prefix}{stem}"

    def _class_dirs(self, view_dirs: Iterable[Path], exclude: Path | None = None) -> list[str]:
        """Class names found in the view folders, filtered by `classes` (which must all exist)."""
        exclude = None if exclude is None else exclude.resolve()
        found = sorted({d.name for v in view_dirs for d in _subdirs(v) if d.resolve() != exclude})
        if self.classes is None:
            return found
        missing = [c for c in self.classes if c not in found]
        if missing:
            raise SourceError(
                f"{self.key('classes')} lists {missing} but there is no such class folder under "
                f"'{self.root}' (found: {found}); fix the list or add the folders"
            )
        ignored = [c for c in found if c not in self.classes]
        if ignored:
            log.info("source '%s': ignoring class folders not in classes: %s", self.name, ignored)
        return [c for c in found if c in self.classes]

    def _check_unique_stems(
        self, label_of_stem: dict[str, str], label: str, stems: Iterable[str], folder: Path
    ) -> None:
        for stem in stems:
            other = label_of_stem.setdefault(stem, label)
            if other != label:
                raise SourceError(
                    f"item '{stem}' appears under two classes, '{other}' and '{label}' "
                    f"(in '{folder}'); an item must have one class: rename or remove one of them"
                )

    @staticmethod
    def _masks_of(folder: Path | None) -> dict[str, Path]:
        return _images_by_stem(folder) if folder is not None and folder.is_dir() else {}

    def _warn_orphan_masks(self, masks: dict[str, Path], images: Iterable[str]) -> None:
        orphans = sorted(str(masks[s]) for s in set(masks) - set(images))
        if orphans:
            log.warning(
                "source '%s': %d mask(s) have no image with the same name and are ignored: %s",
                self.name,
                len(orphans),
                listing(orphans),
            )


class PairedFolderSource(FolderSource):
    """Two cameras: ``<root>/{left,right}/<class>/<item>.<ext>``, paired by item name (stem).

    Masks (optional): ``<masks_root>/{left,right}/<class>/<item>.<ext>``, default
    ``masks_root = <root>/masks``. An item seen by one camera only (including a class folder
    present in one view only) is "unpaired": with ``on_unpaired="keep"`` (default) its one view
    is kept as a record and its files are listed in `unpaired` and in a warning; ``"drop"``
    leaves it out (still listed), ``"error"`` raises.
    """

    def __init__(
        self,
        root: str,
        masks_root: str | None = None,
        classes: Sequence[str] | None = None,
        on_unpaired: str = "keep",
        item_id_prefix: str | None = None,
        name: str = "",
        synthetic: bool = False,
        weight: float = 1.0,
    ) -> None:
        super().__init__(root, masks_root, classes, item_id_prefix, name, synthetic, weight)
        if on_unpaired not in UNPAIRED_POLICIES:
            raise SourceError(
                f"{self.key('on_unpaired')} = {on_unpaired!r}: use one of {UNPAIRED_POLICIES}"
            )
        self.on_unpaired = on_unpaired
        self.unpaired: list[str] = []

    def scan(self, context: SourceContext | None = None) -> list[Record]:
        root = _existing_dir(self.root, self.key("root"), "data folder")
        view_dirs = {v: root / v for v in VIEWS_PAIRED}
        if not any(d.is_dir() for d in view_dirs.values()):
            raise SourceError(
                f"'{root}' ({self.key('root')}) has neither 'left/' nor 'right/' folder; a paired "
                "source expects <root>/left/<class>/... and <root>/right/<class>/... (for one "
                "folder per class use SingleFolderSource)"
            )
        masks_root = Path(self.masks_root).expanduser() if self.masks_root else root / "masks"
        classes = self._class_dirs(d for d in view_dirs.values() if d.is_dir())
        label_of_stem: dict[str, str] = {}
        records: list[Record] = []
        self.unpaired = []
        self.bad_files = []
        missing_folders: list[str] = []
        for label in classes:
            files: dict[str, dict[str, Path]] = {}
            for view, view_dir in view_dirs.items():
                class_dir = view_dir / label
                if not class_dir.is_dir():
                    files[view] = {}
                    missing_folders.append(f"{view}/{label}")
                    continue
                files[view] = _images_by_stem(class_dir, self.bad_files)
                if not files[view]:
                    raise SourceError(
                        f"class folder '{class_dir}' has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                        "add images or remove the folder"
                    )
                self._check_unique_stems(label_of_stem, label, files[view], class_dir)
            masks = {v: self._masks_of(masks_root / v / label) for v in VIEWS_PAIRED}
            for view in VIEWS_PAIRED:
                self._warn_orphan_masks(masks[view], files[view])
            for stem in sorted(set().union(*files.values())):
                views = [v for v in VIEWS_PAIRED if stem in files[v]]
                if len(views) < len(VIEWS_PAIRED):
                    self.unpaired.extend(str(files[v][stem]) for v in views)
                    if self.on_unpaired == "drop":
                        continue
                for view in views:
                    mask = masks[view].get(stem)
                    records.append(
                        Record(
                            source=self.name,
                            item_id=self.item_id(stem),
                            label=label,
                            view=view,
                            path=str(files[view][stem]),
                            mask_path=None if mask is None else str(mask),
                        )
                    )
        if self.unpaired:
            message = (
                f"source '{self.name}': {len(self.unpaired)} image(s) have no partner in the other "
                f"view (same class and file name): {listing(self.unpaired)}"
                f"{_lookalikes(self.unpaired)}"
            )
            if missing_folders:
                message += f" (class folder(s) missing: {listing(missing_folders)})"
            if self.on_unpaired == "error":
                raise SourceError(
                    f"{message}; add the missing views or set {self.key('on_unpaired')}=keep"
                )
            action = "kept as single views" if self.on_unpaired == "keep" else "dropped"
            log.warning("%s; %s", message, action)
        return records


def _lookalikes(unpaired: Sequence[str]) -> str:
    """' (names that look alike: ...)' for unpaired left/right files whose names nearly match."""
    by_view: dict[str, dict[str, str]] = {view: {} for view in VIEWS_PAIRED}
    for path in unpaired:
        file = Path(path)
        view = file.parent.parent.name
        if view in by_view:
            by_view[view][f"{file.parent.name}/{file.stem}"] = file.name
    left, right = (by_view[view] for view in VIEWS_PAIRED)
    pairs = []
    for name in sorted(left):
        close = difflib.get_close_matches(name, list(right), n=1, cutoff=LOOKALIKE_CUTOFF)
        if close and name.split("/")[0] == close[0].split("/")[0]:
            pairs.append(f"left '{left[name]}' ~ right '{right[close[0]]}'")
    if not pairs:
        return ""
    return f" (names that look alike, rename one of each pair: {listing(pairs)})"


class SingleFolderSource(FolderSource):
    """One folder per class: ``<root>/<class>/<item>.<ext>``, view "single".

    Masks (optional): ``<masks_root>/<class>/<item>.<ext>``; no masks when `masks_root` is None.
    A `masks_root` inside `root` (e.g. ``<root>/masks``) is not taken for a class. Also used for a
    folder of ready-made synthetic images (renders) with ``synthetic=True`` (see module doc for
    their item ids).
    """

    def scan(self, context: SourceContext | None = None) -> list[Record]:
        root = _existing_dir(self.root, self.key("root"), "data folder")
        masks_root = None
        if self.masks_root is not None:
            masks_root = _existing_dir(self.masks_root, self.key("masks_root"), "mask folder")
        classes = self._class_dirs([root], exclude=masks_root)
        if not classes:
            raise SourceError(
                f"'{root}' ({self.key('root')}) has no class folders; expected "
                "<root>/<class>/<image> (e.g. <root>/good/0001.png)"
            )
        label_of_stem: dict[str, str] = {}
        records: list[Record] = []
        self.bad_files = []
        for label in classes:
            class_dir = root / label
            files = _images_by_stem(class_dir, self.bad_files)
            if not files:
                hint = ""
                if _subdirs(class_dir):
                    hint = f" (if it holds masks, set {self.key('masks_root')} to it)"
                raise SourceError(
                    f"class folder '{class_dir}' has no images; add images or remove the "
                    f"folder{hint}"
                )
            self._check_unique_stems(label_of_stem, label, files, class_dir)
            masks = self._masks_of(None if masks_root is None else masks_root / label)
            self._warn_orphan_masks(masks, files)
            for stem, path in files.items():
                mask = masks.get(stem)
                records.append(
                    Record(
                        source=self.name,
                        item_id=self.item_id(stem),
                        label=label,
                        view=VIEW_SINGLE,
                        path=str(path),
                        mask_path=None if mask is None else str(mask),
                    )
                )
        return records


class ManifestSource(BaseSource):
    """A CSV listing images: columns ``path,label,item_id`` and optional ``view,mask``.

    Relative image and mask paths resolve against the CSV's folder. An empty `view` is "single",
    an empty `mask` means no mask. Extra columns are ignored. Rows keep the file's order.
    """

    def __init__(
        self,
        csv_path: str,
        classes: Sequence[str] | None = None,
        name: str = "",
        synthetic: bool = False,
        weight: float = 1.0,
    ) -> None:
        super().__init__(name=name, synthetic=synthetic, weight=weight)
        self.csv_path = str(csv_path)
        self.classes = None if classes is None else [str(c) for c in classes]

    def scan(self, context: SourceContext | None = None) -> list[Record]:
        csv_path = Path(self.csv_path).expanduser()
        key = self.key("csv_path")
        if not csv_path.is_file():
            problem = "is not a file" if csv_path.exists() else "does not exist"
            raise FileNotFoundError(f"manifest '{csv_path}' ({key}) {problem}: fix {key}")
        base = csv_path.parent
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in MANIFEST_REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise SourceError(
                    f"manifest '{csv_path}' lacks column(s) {missing} (has {columns}); the header "
                    f"must contain {list(MANIFEST_REQUIRED_COLUMNS)}, optionally "
                    f"{list(MANIFEST_OPTIONAL_COLUMNS)}"
                )
            rows = [
                (reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k})
                for row in reader
            ]
        if not rows:
            raise SourceError(f"manifest '{csv_path}' has a header but no rows; add images")
        problems: list[str] = []
        records: list[Record] = []
        line_of_path: dict[Path, int] = {}
        first_label: dict[str, tuple[str, int]] = {}  # item_id -> (label, line) first seen
        for line, row in rows:
            blank = [c for c in MANIFEST_REQUIRED_COLUMNS if not row.get(c)]
            if blank:
                problems.append(f"line {line}: empty {blank}")
                continue
            path = self._resolve(base, row["path"])
            if path.is_dir():
                problems.append(f"line {line}: image '{row['path']}' is a directory ('{path}')")
            elif not path.is_file():
                problems.append(
                    f"line {line}: image '{row['path']}' not found (looked at '{path}')"
                )
            same = path.resolve()
            if same in line_of_path:
                problems.append(
                    f"line {line}: '{row['path']}' is listed twice (also line {line_of_path[same]})"
                )
            line_of_path.setdefault(same, line)
            mask = self._resolve(base, row["mask"]) if row.get("mask") else None
            if mask is not None and not mask.is_file():
                problems.append(f"line {line}: mask '{row['mask']}' not found (looked at '{mask}')")
            label, line_before = first_label.setdefault(row["item_id"], (row["label"], line))
            if label != row["label"]:
                problems.append(
                    f"line {line}: item_id '{row['item_id']}' is labelled '{row['label']}' but "
                    f"'{label}' on line {line_before} (one physical item has one label)"
                )
            if self.classes is not None and row["label"] not in self.classes:
                problems.append(
                    f"line {line}: label '{row['label']}' is not in {self.key('classes')} "
                    f"{self.classes}"
                )
            records.append(
                Record(
                    source=self.name,
                    item_id=row["item_id"],
                    label=row["label"],
                    view=row.get("view") or VIEW_SINGLE,
                    path=str(path),
                    mask_path=None if mask is None else str(mask),
                )
            )
        if problems:
            raise SourceError(
                f"manifest '{csv_path}' ({key}) has {len(problems)} problem(s): "
                f"{listing(problems)}; fix these rows"
            )
        return records

    @staticmethod
    def _resolve(base: Path, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path

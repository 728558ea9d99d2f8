"""Folder sources: paired left/right camera folders and single class folders.

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

What a scan finds wrong but can skip (a folder named like an image) goes to `bad_files`; every
file `load` decodes leaves an `ImageInfo` in `file_info`: the datamodule's data report reads both.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path

from anomaly_vit.data.image_io import IMAGE_EXTENSIONS, is_image_file
from anomaly_vit.data.records import VIEWS_PAIRED, Record, SourceContext
from anomaly_vit.data.sources.base import VIEW_SINGLE, BaseSource, SourceError, listing
from anomaly_vit.errors import MissingFileError, enum_value

log = logging.getLogger(__name__)


class OnUnpaired(StrEnum):
    """`on_unpaired` of a paired source: keep an item's one view, leave it out, or stop the run."""

    KEEP = "keep"
    DROP = "drop"
    ERROR = "error"


LOOKALIKE_CUTOFF = 0.8  # difflib similarity above which two unpaired names look like a pair
DIRECTORY_REASON = (
    "is a directory named like an image file, not an image; rename it or move it out of the "
    "data folder"
)


def _existing_dir(path: str | Path, key: str, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "does not exist"
        raise MissingFileError(f"{what} '{path}' ({key}) {problem}: fix {key} in the data config")
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
        self.on_unpaired = enum_value(OnUnpaired, on_unpaired, self.key("on_unpaired"), SourceError)
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
                    if self.on_unpaired == OnUnpaired.DROP:
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
            if self.on_unpaired == OnUnpaired.ERROR:
                raise SourceError(
                    f"{message}; add the missing views or set {self.key('on_unpaired')}=keep"
                )
            action = "kept as single views" if self.on_unpaired == OnUnpaired.KEEP else "dropped"
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

    Masks (optional): ``<masks_root>/<class>/<item>.<ext>``, default ``<root>/masks`` when that
    folder exists (no masks otherwise). A `masks_root` inside `root` is not taken for a class. Also used for a
    folder of ready-made synthetic images (renders) with ``synthetic=True`` (see module doc for
    their item ids).
    """

    def scan(self, context: SourceContext | None = None) -> list[Record]:
        root = _existing_dir(self.root, self.key("root"), "data folder")
        masks_root = None
        if self.masks_root is not None:
            masks_root = _existing_dir(self.masks_root, self.key("masks_root"), "mask folder")
        elif (root / "masks").is_dir():
            masks_root = root / "masks"
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

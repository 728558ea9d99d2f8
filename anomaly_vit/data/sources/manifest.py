"""A CSV manifest source: one row per image, with its label, item id, view and mask."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from anomaly_vit.data.records import Record, SourceContext
from anomaly_vit.data.sources.base import VIEW_SINGLE, BaseSource, SourceError, listing
from anomaly_vit.errors import MissingFileError, enum_value

log = logging.getLogger(__name__)

MANIFEST_REQUIRED_COLUMNS = ("path", "label", "item_id")
MANIFEST_OPTIONAL_COLUMNS = ("view", "mask")


class OutsideFolder(StrEnum):
    """What to do with manifest rows whose file lies outside the CSV's folder (`../`, an
    absolute path elsewhere, a symlink out): `outside_folder`."""

    REFUSE = "refuse"  # an error listing the rows
    WARN = "warn"  # one warning listing them; they are read
    ALLOW = "allow"  # read without comment (a manifest that points at a shared image store)


class ManifestSource(BaseSource):
    """A CSV listing images: columns ``path,label,item_id`` and optional ``view,mask``.

    Relative image and mask paths resolve against the CSV's folder. An empty `view` is "single",
    an empty `mask` means no mask. Extra columns are ignored. Rows keep the file's order. Files
    outside the CSV's folder (symlinks followed) are refused, warned about or allowed
    (`outside_folder`).
    """

    def __init__(
        self,
        csv_path: str,
        classes: Sequence[str] | None = None,
        name: str = "",
        synthetic: bool = False,
        weight: float = 1.0,
        outside_folder: str = OutsideFolder.WARN,
    ) -> None:
        super().__init__(name=name, synthetic=synthetic, weight=weight)
        self.csv_path = str(csv_path)
        self.outside_folder = enum_value(OutsideFolder, outside_folder, self.key("outside_folder"))
        self.classes = None if classes is None else [str(c) for c in classes]

    def scan(self, context: SourceContext | None = None) -> list[Record]:
        csv_path = Path(self.csv_path).expanduser()
        key = self.key("csv_path")
        if not csv_path.is_file():
            problem = "is not a file" if csv_path.exists() else "does not exist"
            raise MissingFileError(f"manifest '{csv_path}' ({key}) {problem}: fix {key}")
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
        outside: list[str] = []
        records: list[Record] = []
        line_of_path: dict[Path, int] = {}
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
            if not _inside(base, path):
                outside.append(f"line {line}: '{row['path']}' is '{path.resolve()}'")
            mask = self._resolve(base, row["mask"]) if row.get("mask") else None
            if mask is not None and not _inside(base, mask):
                outside.append(f"line {line}: mask '{row['mask']}' is '{mask.resolve()}'")
            if mask is not None and not mask.is_file():
                problems.append(f"line {line}: mask '{row['mask']}' not found (looked at '{mask}')")
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
        if outside and self.outside_folder is not OutsideFolder.ALLOW:
            said = (
                f"manifest '{csv_path}' lists {len(outside)} file(s) outside its folder "
                f"'{base.resolve()}' ({listing(outside)})"
            )
            key = self.key("outside_folder")
            if self.outside_folder is OutsideFolder.REFUSE:
                raise SourceError(
                    f"{said}: move them under the CSV's folder, or set {key}=allow if the "
                    "manifest is meant to point there."
                )
            log.warning("%s: check that these rows are meant (%s=allow: no warning, "
                        "%s=refuse: an error)", said, key, key)  # fmt: skip
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


def _inside(folder: Path, path: Path) -> bool:
    """Whether `path` (symlinks followed) lies inside `folder`."""
    return path.resolve().is_relative_to(folder.resolve())

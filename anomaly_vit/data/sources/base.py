"""What every image source shares: its name, synthetic flag, mix weight, errors and `load`.

Constructor arguments come from the Hydra config (`data.sources.<name>`), so they are plain
types; `name` is set by the datamodule from the config key. Every file `load` decodes leaves an
`ImageInfo` in `file_info`, and what a scan finds wrong but can skip goes to `bad_files`: the
data report reads both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anomaly_vit.data.image_io import ImageInfo, load_mask, load_rgb_info
from anomaly_vit.data.records import Record, SourceContext
from anomaly_vit.errors import DataError

VIEW_SINGLE = "single"
MAX_LISTED = 10  # how many offending files an error or warning lists before "... and N more"


class SourceError(DataError):
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

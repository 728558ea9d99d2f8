"""The item index: one `Record` per image a source can yield, and the `Source` protocol.

A record is metadata only (no pixels). Pixels come from `source.load(record)`, called once per
record by the datamodule, which caches the decoded result. Derived sources (composites, painted
defects) build their records from another source's records and keep the parent's `item_id`, so
the split by physical item carries every variant of an item into the same split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

VIEWS_PAIRED = ("left", "right")


@dataclass(frozen=True)
class Record:
    """One image a source yields: where it comes from, its class and the physical item it shows."""

    source: str  # name of the source (the key in `data.sources`)
    item_id: str  # physical item: the unit of the train/val/test split
    label: str  # class name, e.g. "good", "scratch"
    view: str  # "left" | "right" | "single" | "mean" | "absdiff" | "stack" | "painted" | ...
    path: str  # image file; for derived records a readable description (parents' paths)
    mask_path: str | None = None  # pixel mask file (nonzero = defect) when one exists
    parents: tuple[Record, ...] = field(
        default=(), compare=False
    )  # records a derived one is made of
    variant: int = 0  # index of a derived variant (e.g. the n-th painted defect on one image)


class Source(Protocol):
    """An image source. `name` and `synthetic` are set from the config; `weight` is its mix share."""

    name: str
    synthetic: bool
    weight: float

    def scan(self, context: SourceContext) -> list[Record]:
        """List every record of this source (cheap: no decoding)."""

    def load(self, record: Record) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode one record to (uint8 HxWx3 RGB image, bool HxW mask or None)."""


@dataclass
class SourceContext:
    """What a derived source may read while scanning: other sources' records and the split."""

    records: dict[str, list[Record]]  # records of the sources scanned so far, by source name
    split_of_item: dict[str, str]  # item_id -> "train" | "val" | "test" (real items only)
    sources: dict[str, Source]  # every configured source, by name (to load parents' pixels)
    seed: int = 0

"""Composite images fused from each left/right pair of a base source (mean, absdiff, stack).

Fusions are pure functions on two uint8 HxWx3 images of equal size. They compute in float64 and
round half up (``floor(x + 0.5)``), then clip to 0..255:

- ``mean``:    ``(L + R) / 2`` per channel.
- ``absdiff``: ``|L - R|`` per channel.
- ``stack``:   channels ``(gray(L), gray(R), |gray(L) - gray(R)|)``, where
  ``gray = R*299/1000 + G*587/1000 + B*114/1000`` (ITU-R 601-2 luma, PIL's ``convert("L")``
  formula) is kept in float until the final rounding, so the third channel is the rounded
  difference of the unrounded grays.

A composite's mask is the union of its parents' masks (None when neither has one). Its `path`
and `mask_path` are descriptions, ``"<left>|<right>"``: pixels come from `CompositeSource.load`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from anomaly_vit.data.image_io import UINT8_MAX
from anomaly_vit.data.records import VIEWS_PAIRED, Record, SourceContext
from anomaly_vit.data.sources.base import SourceError, listing
from anomaly_vit.data.synthetic.derived import DerivedSource

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2, as in PIL's convert("L")
PATH_SEPARATOR = "|"

log = logging.getLogger(__name__)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), 0, UINT8_MAX).astype(np.uint8)


def gray(image: np.ndarray) -> np.ndarray:
    """Float64 HxW luma of a uint8 HxWx3 image (ITU-R 601-2), not rounded."""
    return image.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)


def fuse_mean(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per-channel mean (L + R) / 2, rounded half up."""
    return _to_uint8((left.astype(np.float64) + right.astype(np.float64)) / 2)


def fuse_absdiff(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per-channel absolute difference |L - R|."""
    return _to_uint8(np.abs(left.astype(np.float64) - right.astype(np.float64)))


def fuse_stack(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Channels (gray(L), gray(R), |gray(L) - gray(R)|), each rounded half up."""
    gray_left, gray_right = gray(left), gray(right)
    return _to_uint8(np.stack([gray_left, gray_right, np.abs(gray_left - gray_right)], axis=2))


FUSIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mean": fuse_mean,
    "absdiff": fuse_absdiff,
    "stack": fuse_stack,
}


def fuse(mode: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Fuse two uint8 HxWx3 images of equal size with the named mode (see `FUSIONS`)."""
    if mode not in FUSIONS:
        raise ValueError(f"unknown fusion mode {mode!r}; valid modes: {sorted(FUSIONS)}")
    if left.shape != right.shape:
        raise ValueError(f"left and right images differ in shape: {left.shape} vs {right.shape}")
    return FUSIONS[mode](left, right)


def union_mask(masks: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Union of the masks that exist, or None when none does."""
    present = [m for m in masks if m is not None]
    return np.logical_or.reduce(present) if present else None


class CompositeSource(DerivedSource):
    """One synthetic record per fusion mode for every item of `base` with a left and right view.

    Records: view = mode, item_id and label = the parents', parents = (left, right). Items with
    one view only are skipped and listed in `skipped` (their item ids).
    """

    def __init__(
        self,
        base: str,
        modes: Sequence[str] = ("mean", "absdiff", "stack"),
        name: str = "",
        synthetic: bool = True,
        weight: float = 1.0,
    ) -> None:
        super().__init__(base, name=name, synthetic=synthetic, weight=weight)
        self.modes = tuple(str(m) for m in modes)
        unknown = [m for m in self.modes if m not in FUSIONS]
        if unknown or not self.modes or len(set(self.modes)) != len(self.modes):
            raise SourceError(
                f"{self.key('modes')} = {list(self.modes)}: give each mode once, from the valid "
                f"modes {sorted(FUSIONS)}" + (f" (unknown: {unknown})" if unknown else "")
            )
        self.skipped: list[str] = []

    def scan(self, context: SourceContext) -> list[Record]:
        views_of: dict[str, dict[str, Record]] = {}
        for record in self.base_records(context):
            if record.view not in VIEWS_PAIRED:
                continue
            views = views_of.setdefault(record.item_id, {})
            if record.view in views:
                raise SourceError(
                    f"source '{self.base}' has two '{record.view}' images of item "
                    f"'{record.item_id}' ('{views[record.view].path}', '{record.path}'); "
                    f"composites ({self.key('base')}) need exactly one left and one right per item"
                )
            views[record.view] = record
        pairs = {i: v for i, v in views_of.items() if len(v) == len(VIEWS_PAIRED)}
        self.skipped = sorted(set(views_of) - set(pairs))
        if not pairs:
            raise SourceError(
                f"composites need left/right pairs; source '{self.base}' has none: remove "
                f"data.sources.{self.name or '<name>'} or set its weight to 0"
            )
        records: list[Record] = []
        for item_id, views in pairs.items():
            left, right = (views[v] for v in VIEWS_PAIRED)
            if left.label != right.label:
                raise SourceError(
                    f"item '{item_id}' of source '{self.base}' has label '{left.label}' on the "
                    f"left view and '{right.label}' on the right; give both views one label"
                )
            masks = [m for m in (left.mask_path, right.mask_path) if m is not None]
            for mode in self.modes:
                records.append(
                    Record(
                        source=self.name,
                        item_id=item_id,
                        label=left.label,
                        view=mode,
                        path=f"{left.path}{PATH_SEPARATOR}{right.path}",
                        mask_path=PATH_SEPARATOR.join(masks) if masks else None,
                        parents=(left, right),
                    )
                )
        if self.skipped:
            log.info(
                "source '%s': %d item(s) of '%s' with one view only are skipped: %s",
                self.name,
                len(self.skipped),
                self.base,
                listing(self.skipped),
            )
        return records

    def load(self, record: Record) -> tuple[np.ndarray, np.ndarray | None]:
        """Fuse the parents' pixels (loaded through the base source) with `record.view`."""
        left, right = record.parents
        (left_image, left_mask), (right_image, right_mask) = self.load_parents((left, right))
        if left_image.shape != right_image.shape:
            raise SourceError(
                f"composite of item '{record.item_id}': '{left.path}' is "
                f"{left_image.shape[1]}x{left_image.shape[0]} but '{right.path}' is "
                f"{right_image.shape[1]}x{right_image.shape[0]}; left and right images must "
                f"have the same size, or set data.sources.{self.name}.weight to 0"
            )
        return fuse(record.view, left_image, right_image), union_mask([left_mask, right_mask])

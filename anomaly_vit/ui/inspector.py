"""Runs the bundle's inferencer on the page's photos, a batch at a time, keeping only numbers.

The inferencer is built with threshold 0, so every photo's mask is computed (the page applies
its own threshold from the slider, and shows the mask when the photo is called a defect). Maps
and masks are kept for the photo in the viewer only, so thousands of photos fit in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomaly_vit.data.image_io import BadImageError, to_rgb_array
from anomaly_vit.ui.photos import Photo, open_photo
from anomaly_vit.ui.results import PhotoResult


@dataclass
class Shown:
    """The photo in the viewer: its pixels, map and mask, all at the photo's resolution."""

    name: str
    rgb_hw3: np.ndarray
    map_hw: np.ndarray
    mask_hw: np.ndarray


class Inspector:
    """Predicts photos with `inferencer` (an `anomaly_vit.deploy.Inferencer` at threshold 0)."""

    def __init__(self, inferencer: Any, max_pixels: int, batch_size: int) -> None:
        self.inferencer = inferencer
        self.max_pixels = int(max_pixels)
        self.batch_size = max(1, int(batch_size))

    def inspect(self, photos: Sequence[Photo]) -> tuple[list[PhotoResult], Shown | None]:
        """Every photo's result, in order, and the first readable photo for the viewer."""
        results: list[PhotoResult] = []
        first: Shown | None = None
        for chunk in _chunks(photos, self.batch_size):
            for result, shown in self._predict(chunk, keep=first is None):
                results.append(result)
                first = first or shown
        return results, first

    def show(self, result: PhotoResult) -> Shown | None:
        """The viewer's pixels of one photo (predicted again: maps are not kept)."""
        photo = Photo(result.path, result.name, result.label)
        return self._predict([photo], keep=True)[0][1]

    def _predict(
        self, photos: Sequence[Photo], keep: bool
    ) -> list[tuple[PhotoResult, Shown | None]]:
        out: list[tuple[PhotoResult, Shown | None]] = []
        images, readable = [], []
        for photo in photos:
            result = PhotoResult(photo.name, photo.path, photo.label)
            try:
                image = open_photo(photo.path, self.max_pixels)
            except BadImageError as err:
                result.problem = f"'{photo.name}': {err.reason}"
            else:
                images.append(image)
                readable.append(len(out))
                result.width, result.height = image.size
            out.append((result, None))
        if not images:
            return out
        predictions = self.inferencer.predict(images)
        for index, image, prediction in zip(readable, images, predictions, strict=True):
            result = out[index][0]
            if prediction.error:
                result.problem = f"'{result.name}': {prediction.error}"
                continue
            result.score = float(prediction.score)
            result.mask_area = int(prediction.mask_area)
            result.regions = len(prediction.boxes)
            if keep:
                rgb = to_rgb_array(image, result.path)
                out[index] = (result, Shown(result.name, rgb, prediction.map, prediction.mask))
                keep = False
        return out


def _chunks(items: Sequence[Photo], size: int) -> Iterator[Sequence[Photo]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

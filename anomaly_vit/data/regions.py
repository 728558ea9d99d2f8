"""Connected regions of a binary mask (8-connected): labels and boxes, numpy only.

Rows are cut into runs of True pixels; a run touching a run of the row above (diagonals
included) joins its region (union-find over runs, far fewer than pixels). The inferencer's
boxes and AUPRO's per-region overlaps (`maps.scores.aupro`) both read regions from here.
"""

from __future__ import annotations

import numpy as np


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) column ranges (end exclusive) of the True runs of one row."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _region_runs(mask_hw: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(region, row, start, end) of every run; regions numbered 0.. in order of appearance."""
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    runs: list[tuple[int, int, int]] = []  # (row, start, end)
    previous: list[int] = []  # run ids of the last row with runs
    previous_y = -2
    for y in np.flatnonzero(np.asarray(mask_hw, dtype=bool).any(axis=1)).tolist():
        current = []
        above = previous if previous_y == y - 1 else []
        for start, end in _runs(mask_hw[y]):
            run_id = len(runs)
            runs.append((y, start, end))
            parent.append(run_id)
            for other in above:
                _, o_start, o_end = runs[other]
                if o_start <= end and start <= o_end:  # columns overlap, diagonals included
                    a, b = find(run_id), find(other)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
            current.append(run_id)
        previous, previous_y = current, y
    numbers: dict[int, int] = {}
    return [
        (numbers.setdefault(find(i), len(numbers)), y, start, end)
        for i, (y, start, end) in enumerate(runs)
    ]


def label_regions(mask_hw: np.ndarray) -> tuple[np.ndarray, int]:
    """(int32 labels HxW: 0 background, 1..n the regions, n)."""
    labels = np.zeros(np.shape(mask_hw), dtype=np.int32)
    count = 0
    for region, y, start, end in _region_runs(mask_hw):
        labels[y, start:end] = region + 1
        count = max(count, region + 1)
    return labels, count


def mask_boxes(mask_hw: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) boxes (inclusive pixel bounds) of the 8-connected regions of a mask,
    ordered by their top-left corner."""
    boxes: dict[int, list[int]] = {}
    for region, y, start, end in _region_runs(mask_hw):
        box = boxes.setdefault(region, [start, y, end - 1, y])
        box[0], box[2] = min(box[0], start), max(box[2], end - 1)
        box[1], box[3] = min(box[1], y), max(box[3], y)
    return sorted((tuple(box) for box in boxes.values()), key=lambda b: (b[1], b[0]))

"""Connected regions of a binary mask and their boxes (8-connected), numpy only.

Rows are cut into runs of True pixels; runs touching a run of the row above (including
diagonally) join its region (union-find over runs, far fewer than pixels).
"""

from __future__ import annotations

import numpy as np


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) column ranges (end exclusive) of the True runs of one row."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def mask_boxes(mask_hw: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) boxes (inclusive pixel bounds) of the 8-connected regions of a mask,
    ordered by their top-left corner."""
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    runs: list[tuple[int, int, int]] = []  # (row, start, end)
    previous: list[int] = []  # run ids of the last row with runs
    previous_y = -2
    for y in np.flatnonzero(mask_hw.any(axis=1)).tolist():
        current = []
        above = previous if previous_y == y - 1 else []
        for start, end in _runs(mask_hw[y]):
            run_id = len(runs)
            runs.append((y, start, end))
            parent.append(run_id)
            for other in above:
                _, o_start, o_end = runs[other]
                if o_start <= end and start <= o_end:  # overlap with diagonal reach
                    a, b = find(run_id), find(other)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
            current.append(run_id)
        previous, previous_y = current, y
    boxes: dict[int, list[int]] = {}
    for run_id, (y, start, end) in enumerate(runs):
        box = boxes.setdefault(find(run_id), [start, y, end - 1, y])
        box[0], box[2] = min(box[0], start), max(box[2], end - 1)
        box[1], box[3] = min(box[1], y), max(box[3], y)
    return sorted((tuple(box) for box in boxes.values()), key=lambda b: (b[1], b[0]))

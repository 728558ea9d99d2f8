"""Connected regions (8-connected) of a mask: labels and boxes."""

from __future__ import annotations

import numpy as np

from anomaly_vit.data.regions import label_regions, mask_boxes

MASK = np.array(
    [
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 1],  # (2,1) touches (1,0) diagonally: one region with the top run
        [0, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 1, 0, 0],  # (3,4) is alone: no pixel of row 3 near it
    ],
    dtype=bool,
)


def test_regions_join_diagonal_neighbours_and_keep_apart_the_rest():
    labels, count = label_regions(MASK)
    assert count == 4
    assert (labels > 0).tolist() == MASK.tolist()
    assert labels[0, 0] == labels[0, 1] == labels[1, 2]
    assert labels[1, 5] == labels[2, 5] != labels[0, 0]
    assert labels[3, 0] == labels[4, 0] == labels[4, 1]
    assert len({labels[0, 0], labels[1, 5], labels[3, 0], labels[4, 3]}) == 4


def test_boxes_are_inclusive_and_ordered_by_top_left():
    assert mask_boxes(MASK) == [(0, 0, 2, 1), (5, 1, 5, 2), (0, 3, 1, 4), (3, 4, 3, 4)]
    assert mask_boxes(np.zeros((3, 3), bool)) == []


def test_a_u_shape_is_one_region():
    """Two runs joined only by a later row merge into one region (union-find)."""
    u = np.array([[1, 0, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
    assert label_regions(u)[1] == 1
    assert mask_boxes(u) == [(0, 0, 2, 2)]

"""The operator page's pictures: the mask's outline and the map overlay, at the photo's
resolution."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from anomaly_vit.deploy.draw import INFERNO_ANCHORS, OUTLINE_RGB, map_overlay, map_range, outline


def test_outline_draws_the_mask_border_only():
    photo = np.zeros((7, 9, 3), np.uint8)
    mask = np.zeros((7, 9), bool)
    mask[1:6, 2:8] = True
    drawn = outline(photo, mask, width_px=1)
    red = np.all(drawn == OUTLINE_RGB, axis=-1)
    border = mask.copy()
    border[2:5, 3:7] = False  # the 5 x 6 mask minus its 3 x 4 inside
    np.testing.assert_array_equal(red, border)
    thick = np.all(outline(photo, mask, width_px=2) == OUTLINE_RGB, axis=-1)
    assert thick.sum() == mask.sum() - 1 * 2  # only the 1 x 2 core stays unpainted
    assert not np.any(np.all(outline(photo, np.zeros_like(mask), 3) == OUTLINE_RGB, axis=-1))


def test_outline_and_overlay_refuse_a_mask_of_another_size():
    with pytest.raises(ValueError, match=r"photo \(4, 4\) and mask \(4, 5\)"):
        outline(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), bool), 1)
    with pytest.raises(ValueError, match=r"photo \(4, 4\) and map \(5, 4\)"):
        map_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4)), (0, 1), 0.5)


def test_map_overlay_blends_the_colour_scale_over_the_photo():
    photo = np.full((1, 3, 3), 100, np.uint8)
    map_hw = np.array([[0.0, 0.5, 1.0]], np.float32)
    full = map_overlay(photo, map_hw, (0.0, 1.0), alpha=1.0)
    np.testing.assert_array_equal(full[0, 0], INFERNO_ANCHORS[0])
    # the middle of the scale lies half a level off the middle anchor (256 levels)
    np.testing.assert_allclose(full[0, 1], INFERNO_ANCHORS[2], atol=1)
    np.testing.assert_array_equal(full[0, 2], INFERNO_ANCHORS[-1])
    half = map_overlay(photo, map_hw, (0.0, 1.0), alpha=0.5)
    np.testing.assert_allclose(half[0, 2], 0.5 * 100 + 0.5 * INFERNO_ANCHORS[-1], atol=1)
    assert half.shape == (1, 3, 3) and half.dtype == np.uint8
    assert map_range(map_hw * 7 - 2, "evidence") == (-2.0, 5.0)
    with_nan = np.array([[np.nan, 0.2, 0.6]], np.float32)
    assert map_range(with_nan, "evidence") == pytest.approx((0.2, 0.6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN is mapped, never cast (undefined)
        drawn = map_overlay(photo, with_nan, (0, 1), 1.0)
    np.testing.assert_array_equal(drawn[0, 0], INFERNO_ANCHORS[0])
    assert map_range(map_hw * 0.3, "tokens") == (0.0, 1.0)

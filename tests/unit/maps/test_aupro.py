"""AUPRO: the per-region overlap curve up to 30 % FPR, against a case computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from anomaly_vit.maps.scores import aupro


def _case():
    """Two 1x6 'images': region A (2 px) in the first, region B (1 px) in the second.

    Sorted scores: 0.9 (A), 0.8 (background), 0.6 (B), 0.5 (A), 0.2 x5 and 0.1 x3 background.
    Curve (fpr, pro): (0, 0) -> t=0.9 (0, 1/4) -> t=0.8 (1/9, 1/4) -> t=0.6 (1/9, 3/4)
    -> t=0.5 (1/9, 1) -> t=0.2 (6/9, 1). Area to 0.3: 1/4 * 1/9 + 1 * (0.3 - 1/9) = 0.21667,
    over 0.3: 0.72222.
    """
    maps = torch.tensor([[[0.9, 0.5, 0.8, 0.1, 0.1, 0.1]], [[0.2, 0.2, 0.2, 0.2, 0.2, 0.6]]])
    masks = torch.tensor([[[1, 1, 0, 0, 0, 0]], [[0, 0, 0, 0, 0, 1]]], dtype=torch.bool)
    return maps, masks


def test_aupro_matches_the_hand_computed_curve():
    maps, masks = _case()
    expected = (0.25 * (1 / 9) + 1.0 * (0.3 - 1 / 9)) / 0.3
    assert aupro(maps, masks) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.72222, abs=1e-5)


def test_aupro_weighs_regions_not_pixels():
    """Region A's two pixels count as one region: finding B alone gives PRO 1/2, not 1/3."""
    maps, masks = _case()
    only_b = torch.zeros_like(maps)
    only_b[1, 0, 5] = 1.0  # B above everything, the rest tied at 0
    # (0,0) -> (0, 1/2) -> (1, 1): the tie of 16 pixels jumps to fpr 1; pro at 0.3 is
    # 1/2 + 0.3/2 = 0.65, a trapezoid of 0.3 * (0.5 + 0.65) / 2, over 0.3: 0.575
    expected = 0.3 * (0.5 + 0.65) / 2 / 0.3
    assert aupro(only_b, masks) == pytest.approx(expected, abs=1e-9)


def test_aupro_of_a_perfect_and_an_inverted_map():
    maps, masks = _case()
    assert aupro(masks.float(), masks) == pytest.approx(1.0)
    assert aupro(1.0 - masks.float(), masks) == pytest.approx(0.0)


def test_aupro_is_undefined_without_a_region():
    maps, masks = _case()
    assert math.isnan(aupro(maps, torch.zeros_like(masks)))

"""The pointing game and energy-in-mask agree with Quantus (Hedström et al. 2023), an independent
implementation: `quantus.PointingGame` (a hit when a maximal pixel lies in the mask) and
`quantus.RelevanceMassAccuracy` (the attribution's mass inside the mask over its total)."""

from __future__ import annotations

import numpy as np
import quantus  # a dev extra (pyproject.toml), installed by `make install`
import torch

from anomaly_vit.maps.scores import energy_in_mask, pointing_game


def hand_made(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8 non-negative 24x32 maps with one peak each, half of the peaks inside a rectangle mask."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(8, 24, 32, generator=generator)
    masks = torch.zeros(8, 24, 32, dtype=torch.bool)
    for index in range(8):
        top, left = 2 + index, 3 * index
        masks[index, top : top + 5, left : left + 6] = True
        peak = (top + 2, left + 3) if index % 2 == 0 else (23 - index, 31 - 2 * index)
        maps[index, peak[0], peak[1]] = 2.0
    return maps, masks


def quantus_scores(metric, maps: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    a_batch = maps[:, None].numpy()
    s_batch = masks[:, None].float().numpy()
    x_batch = np.zeros_like(a_batch)
    scores = metric(
        model=None,
        x_batch=x_batch,
        y_batch=np.zeros(len(maps), int),
        a_batch=a_batch,
        s_batch=s_batch,
    )
    return np.asarray(scores, dtype=np.float64)


def test_pointing_game_matches_quantus():
    maps, masks = hand_made()
    metric = quantus.PointingGame(abs=False, normalise=False, disable_warnings=True)
    expected = quantus_scores(metric, maps, masks)
    assert expected.tolist() == [1.0, 0.0] * 4  # the hand-made peaks: inside, outside, ...
    ours = pointing_game(maps, masks, tolerance_px=0).numpy()
    np.testing.assert_array_equal(ours, expected)


def test_energy_in_mask_matches_quantus_relevance_mass_accuracy():
    maps, masks = hand_made(seed=1)
    metric = quantus.RelevanceMassAccuracy(abs=False, normalise=False, disable_warnings=True)
    expected = quantus_scores(metric, maps, masks)
    np.testing.assert_allclose(energy_in_mask(maps, masks).numpy(), expected, rtol=1e-5)
    assert 0.02 < expected.mean() < 0.2  # the masks cover 30 of 768 pixels, the peaks add mass


def test_tied_maxima_score_their_share_where_quantus_counts_any():
    maps, masks = torch.zeros(1, 8, 8), torch.zeros(1, 8, 8, dtype=torch.bool)
    maps[0, 1, 1] = maps[0, 6, 6] = maps[0, 6, 1] = maps[0, 1, 6] = 1.0  # four tied peaks
    masks[0, :3, :3] = True  # holds one of them
    metric = quantus.PointingGame(abs=False, normalise=False, disable_warnings=True)
    assert quantus_scores(metric, maps, masks).tolist() == [1.0]
    assert pointing_game(maps, masks, tolerance_px=0).tolist() == [0.25]

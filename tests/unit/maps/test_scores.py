"""Localisation scores on synthetic maps and masks with known answers, and the two baselines."""

from __future__ import annotations

import math

import pytest
import torch

from anomaly_vit.maps.scores import (
    CENTRE_BASELINE,
    RANDOM_BASELINE,
    centre_prior_maps,
    dilate_masks,
    energy_in_mask,
    normalised_entropy,
    patch_auroc,
    peak_share,
    pixel_auroc,
    pixel_average_precision,
    pointing_game,
    score_maps,
    score_with_baselines,
)

SIZE = 32
PATCH = 8


def square_masks(batch: int = 2, top: int = 8, left: int = 16, side: int = 8) -> torch.Tensor:
    masks = torch.zeros(batch, SIZE, SIZE, dtype=torch.bool)
    masks[:, top : top + side, left : left + side] = True
    return masks


def test_map_equal_to_mask_scores_perfectly():
    masks = square_masks()
    scores = score_maps(masks.float(), masks, PATCH, tolerance_px=0)
    assert scores["pointing"] == 1.0
    assert scores["energy"] == 1.0
    assert scores["pixel_auroc"] == 1.0
    assert scores["pixel_ap"] == pytest.approx(1.0)
    assert scores["patch_auroc"] == 1.0
    assert scores["n_images"] == 2 and scores["n_images_skipped"] == 0


def test_inverted_mask_scores_zero():
    masks = square_masks()
    inverted = (~masks).float()
    assert energy_in_mask(inverted, masks).tolist() == [0.0, 0.0]
    assert pixel_auroc(inverted, masks).tolist() == [0.0, 0.0]
    assert pointing_game(inverted, masks, tolerance_px=0).tolist() == [0.0, 0.0]
    assert patch_auroc(inverted, masks, PATCH).tolist() == [0.0, 0.0]
    # AP of a map ranking every negative first: the mask's share, reached at the last threshold
    share = float(masks[0].float().mean())
    assert pixel_average_precision(inverted, masks)[0].item() == pytest.approx(share)


PEAK = 52  # the top 5 % of 32 x 32 = 1024 pixels, rounded up


def test_uniform_map_is_flat_by_peak_share_and_entropy():
    uniform = torch.full((2, SIZE, SIZE), 0.3)
    # a flat map holds its pixels' share (52 / 1024) in its top 5 %
    torch.testing.assert_close(peak_share(uniform), torch.full((2,), PEAK / 1024))
    torch.testing.assert_close(
        peak_share(torch.zeros(2, SIZE, SIZE)), torch.full((2,), PEAK / 1024)
    )
    torch.testing.assert_close(normalised_entropy(uniform), torch.ones(2))
    masks = square_masks()
    share = float(masks[0].float().mean())
    torch.testing.assert_close(energy_in_mask(uniform, masks), torch.full((2,), share))
    assert pixel_auroc(uniform, masks).tolist() == [0.5, 0.5]
    # all pixels tie at the maximum: the pointing game gives the share that lands in the mask
    torch.testing.assert_close(pointing_game(uniform, masks, 0), torch.full((2,), share))


def test_peak_share_and_entropy_of_peaked_maps():
    one_pixel = torch.zeros(1, SIZE, SIZE)
    one_pixel[0, 3, 4] = 1.0
    assert normalised_entropy(one_pixel).item() == pytest.approx(0.0, abs=1e-6)
    assert peak_share(one_pixel).item() == pytest.approx(1.0)
    two_level = torch.ones(1, SIZE, SIZE)
    two_level[0, :, : SIZE // 2] = 4.0
    # the top 52 pixels are all 4s: 52 * 4 of the mass 512 * 4 + 512 * 1
    assert peak_share(two_level).item() == pytest.approx(52 * 4 / 2560)
    # half the pixels carry 4/5 of the mass: H = -(.8 ln(.8/512) + .2 ln(.2/512)), / ln 1024
    expected = -(0.8 * math.log(0.8 / 512) + 0.2 * math.log(0.2 / 512)) / math.log(1024)
    assert normalised_entropy(two_level).item() == pytest.approx(expected, rel=1e-5)
    # negative maps are shifted to be non-negative first: 2 and -1 become 3 and 0
    assert peak_share(two_level - 2.0).item() == pytest.approx(52 * 3 / (512 * 3))
    assert energy_in_mask(-two_level, two_level > 2).item() == 0.0


def test_pointing_game_tolerance():
    masks = square_masks(batch=1)
    maps = torch.zeros(1, SIZE, SIZE)
    maps[0, 8, 12] = 1.0  # 4 px left of the mask (column 16)
    assert pointing_game(maps, masks, tolerance_px=3).item() == 0.0
    assert pointing_game(maps, masks, tolerance_px=4).item() == 1.0
    diagonal = torch.zeros(1, SIZE, SIZE)
    diagonal[0, 4, 12] = 1.0  # 4 px up and 4 px left of the corner: 5.66 px away
    assert pointing_game(diagonal, masks, tolerance_px=5).item() == 0.0  # a disk, not a square
    assert pointing_game(diagonal, masks, tolerance_px=6).item() == 1.0
    assert dilate_masks(masks, 0).equal(masks)


def test_patch_auroc_positive_share():
    masks = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    masks[0, 0:2, 0:8] = True  # covers 25 % of patch (0, 0)
    maps = torch.zeros(1, SIZE, SIZE)
    maps[0, 0:8, 0:8] = 1.0  # lights the whole patch
    assert patch_auroc(maps, masks, PATCH, patch_positive_share=0.2).item() == 1.0
    assert math.isnan(patch_auroc(maps, masks, PATCH, patch_positive_share=0.5).item())


def test_empty_masks_are_skipped():
    masks = square_masks(batch=3)
    masks[1] = False
    maps = masks.float()
    maps[1] = torch.rand(SIZE, SIZE)
    scores = score_maps(maps, masks, PATCH)
    assert scores["n_images"] == 2 and scores["n_images_skipped"] == 1
    assert scores["pixel_auroc"] == 1.0
    nothing = score_maps(maps, torch.zeros_like(masks), PATCH)
    assert nothing["n_images"] == 0 and math.isnan(nothing["pixel_auroc"])


def test_baselines():
    generator = torch.Generator().manual_seed(3)
    masks = torch.zeros(8, 48, 48, dtype=torch.bool)
    masks[:, 18:30, 18:30] = True  # centred defect, 1/16 of the image
    maps = masks.float() + 0.1 * torch.rand(8, 48, 48, generator=generator)
    scores = score_with_baselines({"rollout": maps}, masks, PATCH, tolerance_px=2)
    assert set(scores) == {"rollout", RANDOM_BASELINE, CENTRE_BASELINE}
    random_scores, centre_scores = scores[RANDOM_BASELINE], scores[CENTRE_BASELINE]
    assert random_scores["energy"] == pytest.approx(1 / 16, abs=0.005)
    assert random_scores["pixel_auroc"] == pytest.approx(0.5, abs=0.03)
    assert centre_scores["energy"] > 2 * random_scores["energy"]
    assert centre_scores["pixel_auroc"] > random_scores["pixel_auroc"] + 0.3
    assert centre_scores["pointing"] == 1.0
    assert scores["rollout"]["pixel_auroc"] == 1.0
    # seeded: the same call gives the same random baseline
    again = score_with_baselines({"rollout": maps}, masks, PATCH, tolerance_px=2)
    assert again[RANDOM_BASELINE] == random_scores
    with pytest.raises(ValueError, match="clash"):
        score_with_baselines({RANDOM_BASELINE: maps}, masks, PATCH)


def test_centre_prior_shape_and_peak():
    prior = centre_prior_maps(2, (31, 41), sigma_frac=0.2)
    assert prior.shape == (2, 31, 41)
    assert divmod(int(prior[0].argmax()), 41) == (15, 20)
    assert prior[0, 15, 20].item() == 1.0


@pytest.mark.parametrize("levels", [None, 5])  # continuous scores, and heavy ties
def test_batched_auroc_and_ap_equal_torchmetrics_per_row(levels):
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    from anomaly_vit.maps.scores import batched_auroc, batched_average_precision

    g = torch.Generator().manual_seed(3)
    scores = torch.rand(6, 400, generator=g)
    if levels:
        scores = (scores * levels).floor() / levels
    labels = torch.rand(6, 400, generator=g) < (0.2 + 0.6 * scores)
    labels[4] = False  # one class only: undefined
    auroc, ap = batched_auroc(scores, labels), batched_average_precision(scores, labels)
    for row in range(6):
        if row == 4:
            assert math.isnan(auroc[row]) and math.isnan(ap[row])
            continue
        expected_auroc = binary_auroc(scores[row], labels[row].long())
        expected_ap = binary_average_precision(scores[row], labels[row].long())
        assert auroc[row].item() == pytest.approx(expected_auroc.item(), abs=1e-5)
        assert ap[row].item() == pytest.approx(expected_ap.item(), abs=1e-5)

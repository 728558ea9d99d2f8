"""Batched augmentation: per-image random parameters, exact identities, seeded."""

import pytest
import torch

from anomaly_vit.data.batch_augment import BatchAugment


def _batch(n=64):
    torch.manual_seed(0)
    return torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8)


def test_disabled_augment_is_the_identity_in_float():
    x = _batch()
    out = BatchAugment(hflip=0, vflip=0)(x)
    assert out.dtype == torch.float32 and torch.equal(out, x.float())


def test_flips_are_drawn_per_image_with_the_given_probability():
    x = _batch(400)
    torch.manual_seed(1)
    out = BatchAugment(hflip=0.5, vflip=0.0)(x)
    flipped = torch.tensor(
        [torch.equal(o, xi.float().flip(-1)) for o, xi in zip(out, x, strict=True)]
    )
    kept = torch.tensor([torch.equal(o, xi.float()) for o, xi in zip(out, x, strict=True)])
    assert bool((flipped | kept).all())
    assert 150 < int(flipped.sum()) < 250  # ~Binomial(400, 0.5)


def test_flips_inside_the_warp_are_exact_and_per_image():
    """With a rotation/shift on, flips are folded into the warp's matrix: still exact mirrors."""
    x = _batch(400)
    torch.manual_seed(3)
    out = BatchAugment(hflip=0.5, vflip=0.5, degrees=1e-7)(x)  # a warp that moves nothing
    kinds = {"none": [], "h": [], "v": [], "hv": []}
    for o, xi in zip(out, x.float(), strict=True):
        for kind, ref in (("none", xi), ("h", xi.flip(-1)), ("v", xi.flip(-2)),
                          ("hv", xi.flip(-1).flip(-2))):  # fmt: skip
            kinds[kind].append(bool((o - ref).abs().max() < 1e-3))
    counts = {k: sum(v) for k, v in kinds.items()}
    assert sum(counts.values()) == 400  # every image is exactly one of the four
    assert all(70 < c < 130 for c in counts.values()), counts  # ~Binomial(400, 0.25) each


def test_translation_moves_each_image_by_its_own_shift():
    x = torch.zeros(32, 1, 32, 32)
    x[:, :, 14:18, 14:18] = 255
    torch.manual_seed(2)
    out = BatchAugment(hflip=0, vflip=0, translate=0.1)(x)
    centres = [(o[0] > 127).nonzero().float().mean(0) for o in out]
    shifts = torch.stack([c - 15.5 for c in centres])
    assert shifts.abs().max() <= 0.1 * 32 + 1  # within the configured ±10% of the side
    assert shifts.std(0).min() > 0.5  # images got different shifts


def test_colour_factors_stay_in_range_and_output_is_clamped():
    x = torch.full((50, 3, 8, 8), 100, dtype=torch.uint8)
    out = BatchAugment(hflip=0, vflip=0, brightness=0.2)(x)
    means = out.mean(dim=(1, 2, 3))
    assert means.min() >= 80 - 1e-3 and means.max() <= 120 + 1e-3 and means.std() > 1
    bright = BatchAugment(hflip=0, vflip=0, brightness=0.9, contrast=0.9)(
        torch.full((20, 3, 4, 4), 250, dtype=torch.uint8)
    )
    assert bright.max() <= 255 and bright.min() >= 0


def test_same_seed_same_augmentation():
    x = _batch()
    aug = BatchAugment(degrees=10, translate=0.06, brightness=0.2, contrast=0.2)
    torch.manual_seed(5)
    a = aug(x)
    torch.manual_seed(5)
    assert torch.equal(a, aug(x))


@pytest.mark.parametrize("kwargs", [{"hflip": 1.5}, {"degrees": -1}, {"contrast": -0.1}])
def test_bad_values_name_the_key(kwargs):
    with pytest.raises(ValueError, match="data.batch_augment"):
        BatchAugment(**kwargs)

"""Token geometry: where each stem's tokens look, maps drawn there, and maps back to the photo."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anomaly_vit.data.resize import ResizeMode, placement
from anomaly_vit.maps.readout import map_to_original, upsample_maps
from anomaly_vit.model.module import ViTClassifier
from anomaly_vit.model.token_geometry import (
    TokenGeometry,
    place_on_image,
    pool_to_tokens,
    token_geometry,
)
from tests.helpers import TINY_NET

TOKEN = (1, 2)  # an interior token of the 4x4 grid of a 32x32 input


def tiny_patch_embed(stem: str) -> nn.Module:
    model = ViTClassifier(["good", "defect"], TINY_NET | {"stem": stem, "global_pool": "max"})
    return model.net.patch_embed.eval()


def gradient_centroid(patch_embed: nn.Module, token: tuple[int, int]) -> tuple[float, float]:
    """Centroid of |d token / d input|: the pixels one token's embedding depends on."""
    for module in patch_embed.modules():  # all-positive weights: no ReLU cuts a path
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 0.1)
    for parent in list(patch_embed.modules()):  # a max pool's centre is its window's centre, not
        for name, child in parent.named_children():  # the tie-broken argmax of a flat input
            if isinstance(child, nn.MaxPool2d):
                window = {"kernel_size": child.kernel_size, "stride": child.stride}
                setattr(parent, name, nn.AvgPool2d(**window, padding=child.padding))
    images = torch.ones(1, 3, 32, 32, requires_grad=True)
    tokens = patch_embed(images)  # [1, N, D], row-major over the grid
    tokens[0, token[0] * 4 + token[1]].sum().backward()
    weight_hw = images.grad[0].abs().sum(dim=0)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    total = weight_hw.sum()
    return float((weight_hw * ys).sum() / total), float((weight_hw * xs).sum() / total)


# patchify 8: pixels 8i..8i+7; three 3x3 stride-2 padding-1 convs: centred on 8i; a ResNet stem
# (7x7/2 conv, 3x3/2 max pool, blocks whose 1x1 shortcuts run beside them): centred on 8i too
@pytest.mark.parametrize(("stem", "offset"), [("patch", 3.5), ("conv", 0.0), ("resnet", 0.0)])
def test_each_stem_knows_where_its_tokens_look(stem, offset):
    patch_embed = tiny_patch_embed(stem)
    geometry = token_geometry(patch_embed)
    assert geometry == TokenGeometry((offset, offset), (8, 8))
    centre = tuple(float(c[i]) for c, i in zip(geometry.centres((4, 4)), TOKEN, strict=True))
    assert centre == (offset + 8, offset + 16)
    assert gradient_centroid(patch_embed, TOKEN) == pytest.approx(centre, abs=1e-4)


def test_geometry_composes_any_conv_and_pool_stem():
    stem = nn.Sequential(
        nn.Conv2d(3, 4, 4, stride=2),  # centre 1.5 + 2j
        nn.ReLU(),
        nn.MaxPool2d(2),  # centre 0.5 + 2j of its input
        nn.Conv2d(4, 4, 3, padding="same"),  # stride 1: keeps the centres
    )
    assert token_geometry(stem) == TokenGeometry((2.5, 2.5), (4, 4))
    with pytest.raises(TypeError, match="no Conv2d or pooling layer"):
        token_geometry(nn.Identity())


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_a_planted_token_peaks_at_its_centre_in_the_map(stem):
    geometry = token_geometry(tiny_patch_embed(stem))
    grid = torch.zeros(1, 4, 4)
    grid[0, TOKEN[0], TOKEN[1]] = 1.0
    maps = upsample_maps(grid, (32, 32), geometry)
    peak = (maps[0] == maps[0].max()).nonzero().float().mean(dim=0)
    expected = [float(c[i]) for c, i in zip(geometry.centres((4, 4)), TOKEN, strict=True)]
    assert peak.tolist() == pytest.approx(expected)
    # a conv-stem centre is a pixel; a patchify centre lies between four, half a pixel off each
    assert float(maps[0].max()) == pytest.approx(1.0 if stem == "conv" else (15 / 16) ** 2)
    # the bilinear default draws every stem like a patchify stem: off by 3.5 px for the conv stem
    default = upsample_maps(grid, (32, 32))
    default_peak = (default[0] == default[0].max()).nonzero().float().mean(dim=0)
    assert default_peak.tolist() == pytest.approx([11.5, 19.5])


def test_map_values_hold_beyond_the_outer_centres_and_interpolate_between():
    geometry = TokenGeometry((0.0, 0.0), (8, 8))
    grid = torch.tensor([[[0.0, 8.0]]])  # 1x2 grid: centres at x = 0 and x = 8
    row = place_on_image(grid, geometry, (1, 12))[0, 0]
    assert row.tolist() == pytest.approx([0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8])


@pytest.mark.parametrize(
    ("stem", "cells"),
    # pixel (4, 12): patch (0, 1); nearest conv-stem centre (8, 16) -> token (1, 2)
    # pixel (3, 3): patch (0, 0) for both; pixels (31, 31): the corner token for both
    [("patch", {(0, 1), (0, 0), (3, 3)}), ("conv", {(1, 2), (0, 0), (3, 3)})],
)
def test_masks_pool_to_the_tokens_whose_window_holds_them(stem, cells):
    geometry = token_geometry(tiny_patch_embed(stem))
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, 4, 12] = mask[0, 3, 3] = mask[0, 31, 31] = True
    pooled = pool_to_tokens(mask, geometry, (4, 4))[0]
    assert {tuple(cell) for cell in pooled.nonzero().tolist()} == cells


@pytest.mark.parametrize(
    ("offset", "pixels_per_row"), [(3.5, [8, 8, 8, 8]), (0.0, [4, 8, 8, 12])]
)  # conv stem: windows [8i-4, 8i+4); the edge tokens take the pixels beyond the outer windows
def test_every_pixel_belongs_to_exactly_one_token(offset, pixels_per_row):
    geometry = TokenGeometry((offset, offset), (8, 8))
    counts = torch.zeros(4, 4)
    for y in range(32):
        one = torch.zeros(1, 32, 32, dtype=torch.bool)
        one[0, y, 5] = True
        counts += pool_to_tokens(one, geometry, (4, 4))[0].float()
    column = 0 if offset else 1  # x = 5 lies in patch 0, but nearest to the conv centre 8
    assert counts[:, column].tolist() == pixels_per_row and counts.sum() == 32


def test_maps_go_back_through_a_letterbox_to_the_photo():
    where = placement((20, 40), (32, 32), ResizeMode.LETTERBOX)  # scaled 16x32 at row 8
    assert where.scaled_hw == (16, 32) and where.offset_yx == (8, 0)

    def ramp(y, x):  # any affine function survives bilinear resampling exactly
        return 3.0 * y - x

    ys_in, xs_in = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    orig_y, orig_x = where.to_original(ys_in + 0.5, xs_in + 0.5)  # pixel centres, original
    input_map = ramp(orig_y - 0.5, orig_x - 0.5)[None]
    back = map_to_original(input_map, where)[0]
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(40.0), indexing="ij")
    assert back.shape == (20, 40)
    torch.testing.assert_close(back[1:-1, 1:-1], ramp(ys, xs)[1:-1, 1:-1], atol=1e-4, rtol=0)


def test_pixels_a_crop_cut_away_have_no_map():
    where = placement((20, 40), (32, 32), ResizeMode.CROP)  # scaled 32x64, 16 px cut each side
    back = map_to_original(torch.ones(1, 32, 32), where)[0]
    seen = ~back.isnan()
    assert seen[:, 10:30].all() and not seen[:, :10].any() and not seen[:, 30:].any()
    torch.testing.assert_close(back[seen], torch.ones(int(seen.sum())))

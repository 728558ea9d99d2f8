"""Attention rollout: hand-computed examples, batching, and planted attention in a real timm ViT."""

from __future__ import annotations

import pytest
import torch

from anomaly_vit.maps.kinds import attention_maps
from anomaly_vit.maps.rollout import attention_rollout
from anomaly_vit.maps.scores import normalised_entropy, peak_share
from tests.helpers import tiny_vit

# Two layers, 3 tokens (token 0 = class token), 2 heads; every head row sums to 1.
LAYER1_HNN = torch.tensor(
    [
        [[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]],
        [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]],
    ],
    dtype=torch.float64,
)
LAYER2_HNN = torch.tensor(
    [
        [[0.0, 0.5, 0.5], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
        [[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]],
    ],
    dtype=torch.float64,
)


def _two_layers() -> list[torch.Tensor]:
    return [LAYER1_HNN[None], LAYER2_HNN[None]]  # batch of one: [1, 2, 3, 3]


def test_mean_fusion_hand_computed():
    # mean heads, + I, / row sums (2):
    #   A1 = [[.75, .1875, .0625], [.125, .875, 0], [.125, 0, .875]]
    #   A2 = [[.5, .375, .125], [.125, .625, .25], [.25, .125, .625]]
    # R = A2 @ A1 (later layer on the left):
    expected = torch.tensor(
        [
            [0.4375, 0.421875, 0.140625],
            [0.203125, 0.5703125, 0.2265625],
            [0.28125, 0.15625, 0.5625],
        ],
        dtype=torch.float64,
    )
    joint = attention_rollout(_two_layers(), head_fusion="mean")
    torch.testing.assert_close(joint[0].double(), expected, rtol=0, atol=1e-6)
    # the wrong order (A1 @ A2) gives a different matrix, so the test can tell
    wrong_order = attention_rollout(_two_layers()[::-1], head_fusion="mean")
    assert not torch.allclose(wrong_order[0].double(), expected, atol=1e-3)


def test_max_fusion_hand_computed_with_keepdim_renormalisation():
    # max heads, + I, rows renormalised by their own sums (2.25, 2.5, 2.5 and 2.5, 3, 3):
    #   A1 = [[2/3, 2/9, 1/9], [.2, .8, 0], [.2, 0, .8]]
    #   A2 = [[.4, .4, .2], [1/6, 1/2, 1/3], [1/3, 1/6, 1/2]]
    expected = torch.tensor(
        [
            [29 / 75, 92 / 225, 46 / 225],
            [5 / 18, 59 / 135, 77 / 270],
            [16 / 45, 28 / 135, 59 / 135],
        ],
        dtype=torch.float64,
    )
    joint = attention_rollout(_two_layers(), head_fusion="max")
    torch.testing.assert_close(joint[0].double(), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(joint[0].sum(-1).double(), torch.ones(3, dtype=torch.float64))


def test_start_layer_uses_only_later_layers():
    expected_a2 = torch.tensor(
        [[0.5, 0.375, 0.125], [0.125, 0.625, 0.25], [0.25, 0.125, 0.625]], dtype=torch.float64
    )
    joint = attention_rollout(_two_layers(), head_fusion="mean", start_layer=1)
    torch.testing.assert_close(joint[0].double(), expected_a2, rtol=0, atol=1e-6)


def test_discard_ratio_keeps_class_token_entries():
    heads_hnn = torch.tensor(
        [
            [[0.2, 0.2, 0.6], [0.1, 0.7, 0.2], [0.3, 0.3, 0.4]],
            [[0.2, 0.4, 0.4], [0.1, 0.5, 0.4], [0.1, 0.3, 0.6]],
        ],
        dtype=torch.float64,
    )
    # mean = [[.2, .3, .5], [.1, .6, .3], [.2, .3, .5]]. ratio .5 of the 2 unprotected entries
    # per row = 1 dropped: row 1 drops .3 (not the lower class-token entry .1), row 2 drops .3;
    # the class token's own row is never touched. Then + I and renormalise:
    one_layer = torch.tensor(
        [[0.6, 0.15, 0.25], [0.1 / 1.7, 1.6 / 1.7, 0.0], [0.2 / 1.7, 0.0, 1.5 / 1.7]],
        dtype=torch.float64,
    )
    joint = attention_rollout([heads_hnn[None]], discard_ratio=0.5, num_protected_tokens=1)
    torch.testing.assert_close(joint[0].double(), one_layer, rtol=0, atol=1e-6)
    # two such layers: class row = .6 * row0 + .15 * row1 + .25 * row2 of the layer above
    joint2 = attention_rollout([heads_hnn[None]] * 2, discard_ratio=0.5)
    expected_cls_row = torch.tensor(
        [0.36 + 0.65 / 17, 0.09 + 2.4 / 17, 0.15 + 3.75 / 17], dtype=torch.float64
    )
    torch.testing.assert_close(joint2[0, 0].double(), expected_cls_row, rtol=0, atol=1e-6)


def _naive_rollout(attn_per_layer, head_fusion, discard_ratio, num_protected):
    """Per-sample, per-row python reference."""
    batch, _, n, _ = attn_per_layer[0].shape
    out = []
    for b in range(batch):
        joint = None
        for attn in attn_per_layer:
            heads = attn[b]
            fused = {"mean": heads.mean(0), "max": heads.max(0).values, "min": heads.min(0).values}[
                head_fusion
            ].clone()
            for i in range(num_protected, n):
                cols = list(range(num_protected, n))
                num_drop = int(discard_ratio * len(cols))
                for j in sorted(cols, key=lambda c, i=i: float(fused[i, c]))[:num_drop]:
                    fused[i, j] = 0.0
            layer = fused + torch.eye(n)
            for i in range(n):
                layer[i] = layer[i] / layer[i].sum()
            joint = layer if joint is None else layer @ joint
        out.append(joint)
    return torch.stack(out)


@pytest.mark.parametrize("head_fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard_ratio", [0.0, 0.6])
def test_batched_equals_naive_loop(head_fusion, discard_ratio):
    generator = torch.Generator().manual_seed(0)
    attn = [
        torch.rand(3, 2, 6, 6, generator=generator).softmax(dim=-1) for _ in range(3)
    ]  # batch 3, 2 heads, 6 tokens, 3 layers
    batched = attention_rollout(attn, head_fusion, discard_ratio, num_protected_tokens=1)
    naive = _naive_rollout(attn, head_fusion, discard_ratio, num_protected=1)
    torch.testing.assert_close(batched, naive, rtol=1e-5, atol=1e-6)


def plant_attention(model: torch.nn.Module, attn_nn: torch.Tensor) -> list:
    """Replace every layer's post-softmax attention by `attn_nn` (all samples and heads)."""

    def hook(module, inputs, output):
        return output * 0 + attn_nn.to(output)  # keeps the graph for gradient maps

    return [blk.attn.attn_drop.register_forward_hook(hook) for blk in model.blocks]


def test_planted_attention_peaks_at_the_planted_patch():
    model = tiny_vit()
    grid_h, grid_w, patch = 4, 4, 8
    target_patch = 9  # grid row 2, column 1
    num_tokens = 1 + grid_h * grid_w
    attn_nn = torch.zeros(num_tokens, num_tokens)
    attn_nn[:, 1 + target_patch] = 1.0  # every query attends to that patch only
    plant_attention(model, attn_nn)
    out = attention_maps(model, torch.randn(2, 3, 32, 32), kinds=("rollout",))
    grid = out["rollout_grid"]
    # class row of R = A @ A with A row 0 = (e0 + e_k)/2, row k = e_k: .25 e0 + .75 e_k
    expected_grid = torch.zeros(grid_h * grid_w)
    expected_grid[target_patch] = 0.75
    torch.testing.assert_close(grid.reshape(2, -1), expected_grid.expand(2, -1))
    maps = out["rollout"]
    assert maps.shape == (2, 32, 32)
    row, col = divmod(target_patch, grid_w)
    flat_argmax = maps[0].argmax()
    assert divmod(int(flat_argmax), 32)[0] // patch == row
    assert divmod(int(flat_argmax), 32)[1] // patch == col


def test_uniform_attention_gives_a_flat_map():
    model = tiny_vit()
    num_tokens = 17
    plant_attention(model, torch.full((num_tokens, num_tokens), 1.0 / num_tokens))
    maps = attention_maps(model, torch.randn(2, 3, 32, 32), kinds=("rollout",))["rollout"]
    flat = torch.full((2,), 52 / 1024)  # a flat map: the top 5 % of pixels hold 5 % (rounded up)
    torch.testing.assert_close(peak_share(maps), flat, atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised_entropy(maps), torch.ones(2), atol=1e-5, rtol=0)

"""Read-out of maps: non-square grids, register tokens and class-token-free (avg-pool) models."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from anomaly_vit.maps.kinds import attention_maps
from anomaly_vit.maps.readout import (
    TokenLayout,
    head_row_weights,
    read_out_maps,
    read_out_tokens,
    token_layout,
)
from anomaly_vit.model.token_geometry import TokenGeometry
from tests.helpers import tiny_vit


def plant_on_patch(model: nn.Module, patch_index: int) -> None:
    """Every query of every layer attends to one patch (token index after the prefix tokens)."""
    layout = token_layout(model)
    attn_nn = torch.zeros(layout.num_tokens, layout.num_tokens)
    attn_nn[:, layout.num_prefix_tokens + patch_index] = 1.0

    def hook(module, inputs, output):
        return output * 0 + attn_nn.to(output)

    for blk in model.blocks:
        blk.attn.attn_drop.register_forward_hook(hook)


def _peak_cell(maps_hw: torch.Tensor, patch: int) -> tuple[int, int]:
    row, col = divmod(int(maps_hw.argmax()), maps_hw.shape[-1])
    return row // patch, col // patch


def test_non_square_grid_keeps_rows_and_columns_apart():
    model = tiny_vit(img_size=(32, 48))
    layout = token_layout(model)
    assert layout.grid_hw == (4, 6)
    target_row, target_col = 1, 4  # a cell that a transposed or sqrt(N) reshape misplaces
    plant_on_patch(model, target_row * 6 + target_col)
    out = attention_maps(model, torch.randn(2, 3, 32, 48))
    for kind in ("rollout", "relevance"):
        assert out[kind].shape == (2, 32, 48) and out[kind].dtype == torch.float32
        assert out[f"{kind}_grid"].shape == (2, 4, 6)
    assert _peak_cell(out["rollout"][0], 8) == (target_row, target_col)
    assert out["logits"].shape == (2, 4)
    torch.testing.assert_close(out["probs"].sum(-1), torch.ones(2))


def test_register_tokens_are_dropped_as_prefix_columns():
    model = tiny_vit(reg_tokens=4)
    layout = token_layout(model)
    assert layout.num_prefix_tokens == 5 and layout.rows == "class_token"
    plant_on_patch(model, 6)
    out = attention_maps(model, torch.randn(3, 3, 32, 32))
    assert out["rollout"].shape == (3, 32, 32)
    assert out["relevance"].shape == (3, 32, 32)
    assert _peak_cell(out["rollout"][0], 8) == divmod(6, 4)


def test_avg_pool_model_without_class_token():
    model = tiny_vit(class_token=False, global_pool="avg")
    layout = token_layout(model)
    assert layout.num_prefix_tokens == 0 and layout.rows == "patch_mean"
    assert not layout.has_class_token
    plant_on_patch(model, 13)
    out = attention_maps(model, torch.randn(2, 3, 32, 32), discard_ratio=0.5)
    assert out["rollout"].shape == (2, 32, 32)
    assert out["relevance"].shape == (2, 32, 32)
    assert torch.isfinite(out["relevance"]).all()
    assert _peak_cell(out["rollout"][1], 8) == divmod(13, 4)


def test_read_out_rows_follow_the_pooling():
    # 1 prefix token + a 1x2 grid; rows chosen so each read-out gives different numbers
    joint = torch.tensor([[[9.0, 1.0, 2.0], [0.0, 3.0, 5.0], [0.0, 7.0, 1.0]]])
    cls_layout = token_layout(tiny_vit())
    geometry = TokenGeometry((1.5, 1.5), (4, 4))  # 4-px patches: a 1x2 grid on a 4x8 image
    cls_layout = replace(cls_layout, grid_hw=(1, 2), num_prefix_tokens=1, geometry=geometry)
    assert read_out_tokens(joint, cls_layout).tolist() == [[[1.0, 2.0]]]
    patch_mean = replace(cls_layout, rows="patch_mean")
    assert read_out_tokens(joint, patch_mean).tolist() == [[[5.0, 3.0]]]
    all_mean = replace(cls_layout, rows="all_mean")
    torch.testing.assert_close(read_out_tokens(joint, all_mean), torch.tensor([[[11 / 3, 8 / 3]]]))
    maps = read_out_maps(joint, cls_layout, (4, 8))
    assert maps.shape == (1, 4, 8)
    assert maps[0, :, 0].tolist() == [1.0] * 4 and maps[0, :, -1].tolist() == [2.0] * 4


def test_head_row_weights_are_the_tokens_the_pool_reads():
    tokens = torch.tensor([[[3.0, 0.0], [1.0, 2.0], [0.0, 1.0]]], requires_grad=True)
    weights = torch.tensor([1.0, -1.0])  # defect-minus-good head weights of two channels
    max_grad = torch.autograd.grad((tokens.amax(dim=1) * weights).sum(), tokens)[0]
    # channel 0 is won by token 0 with weight +1; channel 1 by token 1 with weight -1: not read
    assert head_row_weights(max_grad).tolist() == [[1.0, 0.0, 0.0]]
    mean_grad = torch.autograd.grad((tokens.mean(dim=1) * weights.abs()).sum(), tokens)[0]
    torch.testing.assert_close(head_row_weights(mean_grad), torch.full((1, 3), 1 / 3))
    assert head_row_weights(-max_grad.abs()).tolist() == [[0.0, 0.0, 0.0]]  # no positive evidence
    joint = torch.eye(3)[None]  # rows read through the identity: the weights themselves
    layout = TokenLayout(0, (1, 3), "patch_mean", has_class_token=False)
    assert read_out_tokens(joint, layout, head_row_weights(max_grad)).tolist() == [[[1, 0, 0]]]
    fallback = read_out_tokens(joint, layout, torch.zeros(1, 3))  # no weight: the layout's rows
    torch.testing.assert_close(fallback, torch.full((1, 1, 3), 1 / 3))


def test_a_max_pooled_model_reads_the_channel_winners_weighted_by_the_head():
    model = tiny_vit(global_pool="max", class_token=False).eval()
    for blk in model.blocks:  # identity attention: rollout is the identity, the map its rows
        blk.attn.fused_attn = False  # also in the reference pass below
        blk.attn.attn_drop.register_forward_hook(lambda m, i, out: out * 0 + torch.eye(16))
    images = torch.randn(2, 3, 32, 32)
    out = attention_maps(model, images, kinds=("rollout", "evidence"), targets="contrast")
    with torch.no_grad():
        tokens = model.forward_features(images)  # [2, 16, D]: no prefix tokens
    pooled = tokens.amax(dim=1).requires_grad_(True)
    logits = model.head(model.fc_norm(pooled))
    score = (logits[:, 1:].logsumexp(-1) - logits[:, 0]).sum()  # defect vs good (class 0)
    channel_grad = torch.autograd.grad(score, pooled)[0].clamp(min=0)  # [2, D]
    winners = tokens.argmax(dim=1)  # [2, D]
    expected = torch.zeros(2, 16).scatter_add_(1, winners, channel_grad)
    expected = expected / expected.sum(dim=1, keepdim=True)
    torch.testing.assert_close(out["rollout_grid"].flatten(1), expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # evidence: the head on each token, defect minus good
        per_token = model.head(model.fc_norm(tokens))
    evidence = per_token[..., 1:].logsumexp(-1) - per_token[..., 0]
    torch.testing.assert_close(out["evidence_grid"].flatten(1), evidence, atol=1e-5, rtol=1e-4)
    assert out["evidence"].shape == (2, 32, 32)

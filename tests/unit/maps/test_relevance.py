"""Gradient-weighted relevance: batching, class specificity on a hand-wired ViT, target scores."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anomaly_vit.maps.kinds import attention_maps
from anomaly_vit.maps.relevance import gradient_relevance, target_scores
from tests.helpers import tiny_vit

GRID = 4  # 32 px images, 8 px patches
NUM_PATCHES = GRID * GRID
EMBED_DIM = NUM_PATCHES  # one embedding dimension per patch: token j carries e_j


@pytest.mark.parametrize("targets", [None, "contrast", torch.tensor([3, 0, 1])])
def test_batched_equals_per_sample(targets):
    model = tiny_vit()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    batched = attention_maps(model, images, kinds=("relevance",), targets=targets)["relevance"]
    for b in range(3):
        target_b = targets[b : b + 1] if isinstance(targets, torch.Tensor) else targets
        single = attention_maps(model, images[b : b + 1], kinds=("relevance",), targets=target_b)
        torch.testing.assert_close(batched[b], single["relevance"][0], atol=1e-5, rtol=0)
    assert batched.abs().sum() > 0


def test_frozen_model_under_no_grad_still_gets_gradient_maps():
    model = tiny_vit()
    images = torch.randn(2, 3, 32, 32)
    expected = attention_maps(model, images, kinds=("relevance",))["relevance"]
    model.requires_grad_(False)
    with torch.no_grad():
        got = attention_maps(model, images, kinds=("relevance",))["relevance"]
    torch.testing.assert_close(got, expected)


def test_relevance_leaves_no_parameter_gradients():
    model = tiny_vit()
    attention_maps(model, torch.randn(2, 3, 32, 32), kinds=("relevance",))
    assert all(p.grad is None for p in model.parameters())


def hand_wired_vit(patch_a: int, patch_b: int) -> nn.Module:
    """A 2-layer ViT whose class 0 logit reads only patch A and class 1 only patch B.

    Token j (patch j) is the one-hot e_j (zero patch projection, one-hot position embedding);
    values and output projection are identities, norms identities, MLPs zero. Attention is
    planted: the class token attends half to patch A and half to patch B, every patch token
    to itself. Then the class token ends as 1.5 e_A + 1.5 e_B and the head row of class 0 is e_A.
    """
    model = tiny_vit(embed_dim=EMBED_DIM)
    eye = torch.eye(EMBED_DIM)
    with torch.no_grad():
        model.patch_embed.proj.weight.zero_()
        model.patch_embed.proj.bias.zero_()
        model.cls_token.zero_()
        model.pos_embed.zero_()
        model.pos_embed[0, 1:] = eye
        for blk in model.blocks:
            blk.norm1 = nn.Identity()
            blk.attn.qkv.weight.zero_()
            blk.attn.qkv.weight[2 * EMBED_DIM :] = eye
            blk.attn.qkv.bias.zero_()
            blk.attn.proj.weight.copy_(eye)
            blk.attn.proj.bias.zero_()
            blk.mlp.fc2.weight.zero_()
            blk.mlp.fc2.bias.zero_()
        model.norm = nn.Identity()
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[0, patch_a] = 1.0
        model.head.weight[1, patch_b] = 1.0
    attn_nn = torch.eye(1 + NUM_PATCHES)
    attn_nn[0, 0] = 0.0
    attn_nn[0, 1 + patch_a] = 0.5
    attn_nn[0, 1 + patch_b] = 0.5

    def plant(module, inputs, output):
        return output * 0 + attn_nn.to(output)

    for blk in model.blocks:
        blk.attn.attn_drop.register_forward_hook(plant)
    return model


def test_class_whose_logit_reads_one_patch_lights_that_patch():
    patch_a, patch_b = 5, 10  # in head 0 and head 1 of the value dimensions
    model = hand_wired_vit(patch_a, patch_b)
    images = torch.randn(2, 3, 32, 32)
    out = attention_maps(model, images, targets=torch.tensor([0, 1]))
    torch.testing.assert_close(out["logits"][:, :2], torch.full((2, 2), 1.5))
    # Chefer: layer 1 Ā has .25 at (cls, A) and (A, A); layer 2 .5 at (cls, A):
    # class row of R = e_cls + .25 e_A + .5 * 1.25 e_A = e_cls + .875 e_A
    expected_0 = torch.zeros(NUM_PATCHES)
    expected_0[patch_a] = 0.875
    expected_1 = torch.zeros(NUM_PATCHES)
    expected_1[patch_b] = 0.875
    grid = out["relevance_grid"].reshape(2, -1)
    torch.testing.assert_close(grid[0], expected_0, atol=1e-6, rtol=0)
    torch.testing.assert_close(grid[1], expected_1, atol=1e-6, rtol=0)
    assert out["relevance_targets"].tolist() == [0, 1]
    # attention alone cannot tell the classes apart: rollout weighs both patches equally
    rollout = out["rollout_grid"].reshape(2, -1)
    torch.testing.assert_close(rollout[:, patch_a], rollout[:, patch_b])
    assert float(rollout[0, patch_a]) > 0
    # a class whose logit reads nothing gets no relevance at all
    none = attention_maps(model, images, kinds=("relevance",), targets=torch.tensor([2, 3]))
    assert float(none["relevance_grid"].abs().max()) == 0.0


def test_contrast_target_explains_defect_evidence():
    patch_a, patch_b = 5, 10
    model = hand_wired_vit(patch_a, patch_b)
    with torch.no_grad():
        model.head.weight[0].zero_()  # "good" (class 0) reads nothing
    grid = attention_maps(
        model, torch.randn(1, 3, 32, 32), kinds=("relevance",), targets="contrast"
    )
    relevance = grid["relevance_grid"].reshape(-1)
    assert int(relevance.argmax()) == patch_b
    assert grid["relevance_targets"].tolist() == [-1]


def test_target_scores():
    logits = torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.5, -1.0, 0.0, 4.0]])
    torch.testing.assert_close(target_scores(logits), torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(
        target_scores(logits, torch.tensor([0, 1])), torch.tensor([1.0, -1.0])
    )
    contrast = target_scores(logits, "contrast", good_class=0)
    expected = torch.stack(
        [
            torch.logsumexp(torch.tensor([2.0, 3.0, 0.0]), 0) - 1.0,
            torch.logsumexp(torch.tensor([-1.0, 0.0, 4.0]), 0) - 0.5,
        ]
    )
    torch.testing.assert_close(contrast, expected)
    two_class = torch.tensor([[0.2, 1.7]])
    torch.testing.assert_close(target_scores(two_class, "contrast"), torch.tensor([1.5]))


def test_gradient_relevance_rule_on_numbers():
    # one layer, one head, 2 tokens: Ā = (G ⊙ A)+ ; R = I + Ā
    attn = torch.tensor([[[[0.5, 0.5], [0.25, 0.75]]]])
    grad = torch.tensor([[[[2.0, -4.0], [1.0, 1.0]]]])
    expected = torch.tensor([[[2.0, 0.0], [0.25, 1.75]]])
    torch.testing.assert_close(gradient_relevance([attn], [grad]), expected)
    # two identical layers: R2 = R1 + Ā R1
    a_bar = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    r1 = torch.eye(2) + a_bar
    torch.testing.assert_close(gradient_relevance([attn] * 2, [grad] * 2)[0], r1 + a_bar @ r1)

"""Learn from masks: token scores trained against pooled masks, off by default and exact then."""

from __future__ import annotations

import pytest
import torch

from anomaly_vit.model.mask_guidance import pool_mask_to_grid, token_mask_loss
from anomaly_vit.model.module import ViTClassifier
from tests.helpers import TINY_NET

NET = TINY_NET | {"global_pool": "max"}


# pixel (4, 12) lies in patch (0, 1) but nearest the conv stem's token centre (8, 16): (1, 2)
@pytest.mark.parametrize(("stem", "cell"), [("patch", (0, 1)), ("conv", (1, 2))])
def test_pooled_masks_match_a_hand_made_case_through_both_stems(stem, cell):
    model = ViTClassifier(
        ["good", "defect"], NET | {"stem": stem}, mask_loss={"weight": 1.0, "decision": "mix"}
    )
    assert tuple(model.net.patch_embed.grid_size) == (4, 4)
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, 4, 12] = True
    mask[0, 30:, :3] = True  # a corner blob: token row 3, column 0 for both stems
    expected = torch.zeros(4, 4)
    expected[cell] = expected[3, 0] = 1
    pooled = pool_mask_to_grid(mask, model.net.patch_embed.grid_size, model.token_geometry)
    assert torch.equal(pooled, expected.flatten()[None])
    batch = {"mask": mask, "mask_known": torch.tensor([True]), "synthetic": torch.tensor([True])}
    _, tokens = model.forward_with_tokens(torch.zeros(1, 3, 32, 32))
    assert tokens.shape == pooled.shape  # one score per token, in the same order
    # the loss reads the same pooled grid: token logits equal to the targets' sign score lowest
    perfect = (pooled * 2 - 1) * 20
    assert model._mask_loss(batch, perfect).item() < 1e-6
    assert model._mask_loss(batch, -perfect).item() > 10


def test_mask_loss_is_zero_without_a_known_mask_and_positive_with_one():
    logits = torch.randn(2, 16, requires_grad=True)
    targets = torch.zeros(2, 16)
    targets[0, 3] = 1
    none_known = token_mask_loss(logits, targets, torch.tensor([False, False]))
    assert none_known.item() == 0.0
    none_known.backward()
    assert torch.count_nonzero(logits.grad) == 0
    assert token_mask_loss(logits, targets, torch.tensor([True, False])).item() > 0


def test_weight_zero_builds_no_token_head_and_draws_no_extra_random_numbers():
    torch.manual_seed(0)
    plain = ViTClassifier(["good", "defect"], NET | {"stem": "conv"})
    after_plain = torch.rand(1)
    torch.manual_seed(0)
    off = ViTClassifier(["good", "defect"], NET | {"stem": "conv"}, mask_loss={"weight": 0.0})
    assert off.token_head is None and torch.equal(torch.rand(1), after_plain)
    for (name, a), (_, b) in zip(plain.state_dict().items(), off.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_decision_that_reads_untrained_tokens_is_refused():
    with pytest.raises(ValueError, match="model.mask_loss.decision=tokens.*weight > 0"):
        ViTClassifier(["good", "defect"], NET, mask_loss={"weight": 0.0, "decision": "tokens"})
    with pytest.raises(ValueError, match="model.mask_loss.sources='pixels': use one of"):
        ViTClassifier(["good", "defect"], NET, mask_loss={"weight": 1.0, "sources": "pixels"})


def _batch(n: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """Bright squares on dark noise; the squares' masks; every second image defective."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g) * 60
    masks = torch.zeros(n, 32, 32, dtype=torch.bool)
    labels = (torch.arange(n) % 2 == 0).long()
    for i in range(0, n, 2):
        y, x = (int(v) for v in torch.randint(0, 24, (2,), generator=g))
        masks[i, y : y + 8, x : x + 8] = True
    images[masks.unsqueeze(1).expand_as(images)] = 230.0
    return {
        "image": images,
        "label": labels,
        "mask": masks,
        "mask_known": torch.ones(n, dtype=torch.bool),
        "synthetic": torch.zeros(n, dtype=torch.bool),
    }


def _mass_in_masks(model: ViTClassifier, batch: dict[str, torch.Tensor]) -> float:
    """Share of the token map's (softmax over tokens) mass inside the pooled masks."""
    with torch.no_grad():
        _, tokens = model.forward_with_tokens(batch["image"])
    defect = batch["label"] == 1
    weights = tokens[defect].softmax(dim=1)
    inside = pool_mask_to_grid(batch["mask"][defect], model.net.patch_embed.grid_size)
    return float((weights * inside).sum(dim=1).mean())


def test_a_short_fit_moves_the_token_maps_mass_into_the_masks():
    torch.manual_seed(0)
    model = ViTClassifier(
        ["good", "defect"], NET | {"stem": "conv"}, mask_loss={"weight": 1.0, "decision": "mix"}
    )
    train, held_out = _batch(seed=1), _batch(seed=2)
    before = _mass_in_masks(model, held_out)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        logits, tokens = model.forward_with_tokens(train["image"])
        loss = model._loss(logits, train["label"]) + model._mask_loss(train, tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _mass_in_masks(model, held_out)
    # a square covers ~1/4 of the 16 tokens' patches: a flat map puts ~0.25 in the mask
    assert before < 0.4 and after > 0.8, (before, after)


def test_sources_select_which_masks_teach():
    model = ViTClassifier(
        ["good", "defect"], NET, mask_loss={"weight": 1.0, "sources": "synthetic"}
    )
    batch = _batch(4)
    _, tokens = model.forward_with_tokens(batch["image"])
    assert model._mask_loss(batch, tokens).item() == 0.0  # all real: synthetic-only learns nothing
    batch["synthetic"][:] = True
    assert model._mask_loss(batch, tokens).item() > 0.0


def test_the_token_head_is_optimised_with_the_network():
    from types import SimpleNamespace

    model = ViTClassifier(["good", "defect"], NET, mask_loss={"weight": 1.0})
    model._trainer = SimpleNamespace(estimated_stepping_batches=10, max_epochs=2)
    optimizer = model.configure_optimizers()["optimizer"]
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in model.token_head.parameters()} <= optimised
    assert {id(p) for p in model.net.parameters()} <= optimised


def test_the_token_map_is_a_map_kind_of_explain():
    from anomaly_vit.maps.kinds import explain_images

    model = ViTClassifier(["good", "defect"], NET, mask_loss={"weight": 1.0, "decision": "mix"})
    images = _batch(2)["image"]
    explanation = explain_images(model, images, ["rollout", "tokens"], good_class=0)
    assert explanation.maps["tokens"].shape == (2, 32, 32)
    assert explanation.grids["tokens"].shape == (2, 4, 4)
    _, tokens = model.forward_with_tokens(images)
    assert torch.allclose(explanation.grids["tokens"].flatten(1), tokens.sigmoid(), atol=1e-6)
    plain = ViTClassifier(["good", "defect"], NET)
    with pytest.raises(ValueError, match="map kind 'tokens' needs a model trained with the mask"):
        explain_images(plain, images, ["tokens"], good_class=0)

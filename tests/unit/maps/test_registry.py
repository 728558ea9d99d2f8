"""The map-kind registry is the one place a kind lives: a new kind is one function and one line of
`MAP_KINDS`; the ViT is located once per batch and kinds reading the same pass share it."""

from __future__ import annotations

import pytest
import torch

from anomaly_vit.callbacks.maps import MapDumper
from anomaly_vit.maps import capture, forward
from anomaly_vit.maps.kinds import MAP_KINDS, MapKind, explain_images
from anomaly_vit.maps.scorer import SplitScorer
from anomaly_vit.model.module import ViTClassifier
from tests.helpers import TINY_NET

SIZE = 32  # TINY_NET's img_size: 4 x 4 patches of 8 px


def _model(token_head: bool = False) -> ViTClassifier:
    torch.manual_seed(0)
    mask_loss = {"weight": 1.0} if token_head else None
    return ViTClassifier(["good", "scratch"], dict(TINY_NET), mask_loss=mask_loss).eval()


def _images(batch: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (batch, 3, SIZE, SIZE), generator=generator).float()


def flat_grid(forward_pass: forward.ForwardPass) -> torch.Tensor:
    """A kind made for this test: the same value on every patch."""
    return torch.ones(len(forward_pass.logits_bk), *forward_pass.batch.layout.grid_hw)


def test_a_new_kind_is_one_function_and_one_registry_line(monkeypatch):
    monkeypatch.setitem(MAP_KINDS, "flat", MapKind(flat_grid))
    model = _model()
    explanation = explain_images(model, _images(), ["flat", "contrast"], good_class=0)
    assert explanation.maps["flat"].shape == (3, SIZE, SIZE)
    torch.testing.assert_close(explanation.maps["flat"], torch.ones(3, SIZE, SIZE))
    # the config checks, the callback and the scorer know it from the registry alone
    assert MapDumper(kinds=["flat"]).kinds == ["flat"]
    labels = torch.tensor([1, 1, 0])
    masks = torch.zeros(3, SIZE, SIZE, dtype=torch.bool)
    masks[:2, :8, :16] = True  # 1/8 of each defective image
    block = SplitScorer(kinds=["flat"], device="cpu").score(model, _images(), labels, masks)
    assert block["kinds"] == ["flat"] and block["n_scored"] == 2
    flat = block["maps"]["flat"]
    assert flat["energy"] == pytest.approx(1 / 8)  # a flat map: the mask's area share
    assert flat["peak_share"] == pytest.approx(52 / 1024)  # its top 5 %: 5 % (52 pixels)


def test_the_vit_is_located_once_per_batch(monkeypatch):
    calls = {"find": 0, "layout": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    find = counted("find", capture.find_vision_transformer)
    monkeypatch.setattr(capture, "find_vision_transformer", find)
    monkeypatch.setattr(forward, "find_vision_transformer", find)
    monkeypatch.setattr(forward, "token_layout", counted("layout", forward.token_layout))
    explain_images(_model(token_head=True), _images(), list(MAP_KINDS), good_class=0)
    assert calls == {"find": 1, "layout": 1}  # 5 kinds, 3 forward passes, one look-up


@pytest.mark.parametrize(
    ("kinds", "passes"),
    [
        (["rollout", "relevance", "evidence"], 1),  # they read the predicted class's pass
        (["rollout", "contrast"], 2),  # contrast explains defect-vs-good: its own pass
        (list(MAP_KINDS), 3),  # and the token head's plain pass
    ],
)
def test_kinds_reading_the_same_pass_share_one_forward(kinds, passes):
    model = _model(token_head=True)
    count = []
    handle = model.net.patch_embed.register_forward_hook(lambda *_: count.append(1))
    try:
        explain_images(model, _images(), kinds, good_class=0)
    finally:
        handle.remove()
    assert len(count) == passes

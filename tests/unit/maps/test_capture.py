"""Attention capture: the model is left exactly as found, and capture works in inference mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anomaly_vit.maps.capture import capture_attention, forward_with_attention
from anomaly_vit.maps.kinds import attention_maps
from tests.helpers import tiny_vit


def _all_hooks_empty(model: nn.Module) -> bool:
    return all(
        not module._forward_hooks and not module._forward_pre_hooks for module in model.modules()
    )


def test_capture_returns_post_softmax_attention_matching_a_manual_computation():
    model = tiny_vit().eval()
    images = torch.randn(2, 3, 32, 32)
    block_inputs = {}
    model.blocks[1].attn.register_forward_pre_hook(
        lambda module, args: block_inputs.__setitem__("x", args[0])
    )
    logits, attn = forward_with_attention(model, images)
    assert len(attn) == 2
    assert all(a.shape == (2, 2, 17, 17) and a.dtype == torch.float32 for a in attn)
    torch.testing.assert_close(attn[0].sum(-1), torch.ones(2, 2, 17))
    # recompute layer 1's attention by hand from its input
    blk = model.blocks[1].attn
    x = block_inputs["x"]
    q, k, _ = blk.qkv(x).reshape(2, 17, 3, 2, 8).permute(2, 0, 3, 1, 4)
    manual = ((q * blk.scale) @ k.transpose(-2, -1)).softmax(-1)
    torch.testing.assert_close(attn[1], manual, atol=1e-6, rtol=1e-5)
    # the unfused path computes the same logits as the fused one
    with torch.no_grad():
        torch.testing.assert_close(logits, model(images), atol=1e-5, rtol=1e-5)


def test_model_is_left_as_found():
    model = tiny_vit()
    model.train()
    model.blocks[0].mlp.eval()  # a submodule with its own flag must keep it
    model.set_grad_checkpointing(True)
    fused_before = [blk.attn.fused_attn for blk in model.blocks]
    assert any(fused_before), "timm should use fused attention by default"
    with capture_attention(model) as record:
        assert not model.training
        assert not any(blk.attn.fused_attn for blk in model.blocks)
        assert not model.grad_checkpointing
        model(torch.randn(1, 3, 32, 32))
    assert record.num_layers == 2
    assert [blk.attn.fused_attn for blk in model.blocks] == fused_before
    assert model.training and model.blocks[1].mlp.training
    assert not model.blocks[0].mlp.training
    assert model.grad_checkpointing
    assert _all_hooks_empty(model)


def test_model_is_restored_after_an_exception_inside():
    model = tiny_vit()
    model.train()
    with pytest.raises(RuntimeError, match="boom"), capture_attention(model):
        model(torch.randn(1, 3, 32, 32))
        raise RuntimeError("boom")
    assert all(blk.attn.fused_attn for blk in model.blocks)
    assert model.training
    assert _all_hooks_empty(model)


def test_maps_leave_model_as_found_even_for_gradient_maps():
    model = tiny_vit()
    model.train()
    attention_maps(model, torch.randn(2, 3, 32, 32))
    assert all(blk.attn.fused_attn for blk in model.blocks)
    assert model.training
    assert _all_hooks_empty(model)


def test_reading_without_forward_pass_says_what_to_do():
    model = tiny_vit()
    with capture_attention(model) as record, pytest.raises(RuntimeError, match="forward"):
        record.attn_bhnn()


@pytest.mark.parametrize("kind", ["rollout", "relevance"])
def test_works_under_inference_mode(kind):
    model = tiny_vit()
    images = torch.randn(2, 3, 32, 32)
    expected = attention_maps(model, images, kinds=(kind,))
    with torch.inference_mode():
        inference_images = images.clone()  # an inference tensor, as in Lightning validation
        assert inference_images.is_inference()
        got = attention_maps(model, inference_images, kinds=(kind,))
    torch.testing.assert_close(got[kind], expected[kind])
    torch.testing.assert_close(got["logits"], expected["logits"])
    assert got[kind].abs().sum() > 0


def test_autocast_is_disabled_inside():
    model = tiny_vit()
    images = torch.randn(2, 3, 32, 32)
    expected = attention_maps(model, images)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = attention_maps(model, images)
    assert got["rollout"].dtype == torch.float32
    torch.testing.assert_close(got["rollout"], expected["rollout"])
    torch.testing.assert_close(got["relevance"], expected["relevance"])


class Wrapper(nn.Module):
    """Like a LightningModule: the ViT is an attribute; forward returns its logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_module_wrapping_the_vit_works():
    net = tiny_vit()
    images = torch.randn(2, 3, 32, 32)
    direct = attention_maps(net, images)
    wrapped = attention_maps(Wrapper(net), images)
    torch.testing.assert_close(wrapped["relevance"], direct["relevance"])
    with pytest.raises(TypeError, match="VisionTransformer"):
        attention_maps(nn.Linear(2, 2), images)

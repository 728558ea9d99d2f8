"""The hybrid stem (`model.net.stem=resnet`): the ViT's token grid, and clear errors."""

from __future__ import annotations

import pytest
import torch

from anomaly_vit.model.factory import create_vit

NET = {"model_name": "vit_tiny_patch16_224", "embed_dim": 32, "depth": 1, "num_heads": 2}


@pytest.mark.parametrize(("patch", "grid", "channels"), [(16, (5, 2), 256), (8, (10, 4), 128)])
def test_the_resnet_stages_end_at_the_patch_stride(patch, grid, channels):
    net = create_vit(num_classes=2, stem="resnet", img_size=(80, 32), patch_size=patch, **NET)
    assert net.patch_embed.grid_size == grid
    assert net.patch_embed.proj.in_channels == channels  # layer3 (stride 16) / layer2 (stride 8)
    tokens = net.forward_features(torch.zeros(2, 3, 80, 32))
    assert tokens.shape == (2, net.num_prefix_tokens + grid[0] * grid[1], 32)


def test_a_bad_patch_size_or_stem_model_names_the_key():
    with pytest.raises(ValueError, match=r"model.net.patch_size=12: a ResNet stem"):
        create_vit(num_classes=2, stem="resnet", img_size=48, patch_size=12, **NET)
    with pytest.raises(ValueError, match=r"model.net.stem_model='vgg11': name a timm ResNet"):
        create_vit(
            num_classes=2, stem="resnet", stem_model="vgg11", img_size=32, patch_size=16, **NET
        )

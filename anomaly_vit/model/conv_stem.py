"""A convolutional stem for timm ViTs (Xiao et al. 2021, "Early convolutions help transformers see better").

Stride-2 3x3 convolutions replace the single patchify convolution: log2(patch_size) stages take
the image to the same token grid, so the ViT, its attention and its grid stay as they were, but
tokens start from local features, which helps small-data training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn as nn
from timm.layers import HybridEmbed, to_2tuple

from anomaly_vit.errors import ConfigError


def conv_stem(in_chans: int, channels: Sequence[int]) -> nn.Sequential:
    """Conv3x3(stride 2) + BatchNorm + ReLU per entry of `channels`."""
    layers: list[nn.Module] = []
    for out_chans in channels:
        layers += [
            nn.Conv2d(in_chans, out_chans, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(inplace=True),
        ]
        in_chans = out_chans
    stem = nn.Sequential(*layers)
    stem.num_features = in_chans  # what timm's HybridEmbed reads for the projection's input
    return stem


class ConvStemEmbed(HybridEmbed):
    """Patch embedding = conv stem + 1x1 projection; exposes the ViT's `patch_size`/`grid_size`."""

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans=3,
        embed_dim=768,
        bias=True,
        stem_channels: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        patch = to_2tuple(patch_size)
        if patch[0] != patch[1] or 2 ** round(math.log2(patch[0])) != patch[0]:
            raise ConfigError(
                f"model.net.patch_size={patch_size}: a conv stem needs a square power-of-two patch size."
            )
        n_stages = round(math.log2(patch[0]))
        channels = list(stem_channels or [])
        if len(channels) != n_stages:
            base = embed_dim // 2**n_stages
            channels = [max(16, base * 2**i) for i in range(1, n_stages + 1)]
        img = to_2tuple(img_size)
        super().__init__(
            conv_stem(in_chans, channels),
            img_size=img,
            patch_size=1,
            feature_size=(img[0] // patch[0], img[1] // patch[1]),
            in_chans=in_chans,
            embed_dim=embed_dim,
            bias=bias,
            **{k: v for k, v in kwargs.items() if k != "dynamic_img_pad"},
        )
        self.patch_size = patch  # the stride of the whole stem: one token per patch_size pixels

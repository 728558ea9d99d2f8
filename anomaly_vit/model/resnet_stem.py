"""A hybrid ViT stem: the first stages of a timm ResNet, then a 1x1 projection to the tokens.

The "more locality" lever of the real-data study (docs/results): a ViT whose tokens start from
a residual CNN's features (as timm's own hybrid ViTs, Dosovitskiy et al. 2021, section 3.1) keeps
the CNN's data efficiency on a few hundred photos, while attention, the token head and every map
work on its token grid as before. The stem's stride is the ViT's `patch_size` (8: ResNet stages
to layer2, 16: to layer3, 32: to layer4), so the token grid is the one a patchify stem would give.
"""

from __future__ import annotations

import math

import timm
import torch.nn as nn
from timm.layers import HybridEmbed, to_2tuple

# timm ResNet `features_only` output index by stride: act1 2, layer1 4, layer2 8, layer3 16, layer4 32
FEATURE_INDEX_BY_STRIDE = {2: 0, 4: 1, 8: 2, 16: 3, 32: 4}


class ResNetStemEmbed(HybridEmbed):
    """Patch embedding = ResNet stages (from scratch) + 1x1 projection; same grid as patchify."""

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans=3,
        embed_dim=768,
        bias=True,
        stem_model: str = "resnet18",
        **kwargs,
    ) -> None:
        patch = to_2tuple(patch_size)
        if patch[0] != patch[1] or patch[0] not in FEATURE_INDEX_BY_STRIDE:
            raise ValueError(
                f"model.net.patch_size={patch_size}: a ResNet stem needs a square patch of "
                f"{sorted(FEATURE_INDEX_BY_STRIDE)} pixels (its stride)."
            )
        if not stem_model.startswith("resnet") or stem_model not in timm.list_models("resnet*"):
            raise ValueError(
                f"model.net.stem_model={stem_model!r}: name a timm ResNet, e.g. resnet18, resnet34."
            )
        backbone = timm.create_model(
            stem_model,
            pretrained=False,
            features_only=True,
            out_indices=(FEATURE_INDEX_BY_STRIDE[patch[0]],),
            in_chans=in_chans,
        )
        img = to_2tuple(img_size)
        super().__init__(
            backbone,
            img_size=img,
            patch_size=1,
            feature_size=(img[0] // patch[0], img[1] // patch[1]),
            feature_ratio=patch,
            in_chans=in_chans,
            embed_dim=embed_dim,
            bias=bias,
            **{k: v for k, v in kwargs.items() if k not in ("dynamic_img_pad", "stem_channels")},
        )
        self.patch_size = patch  # the stride of the whole stem: one token per patch_size pixels
        self.n_stages = int(math.log2(patch[0]))

    def main_path_layers(self) -> list[nn.Module]:
        """The strided layers a token's receptive-field centre passes through, in order: the
        stem conv and max pool, then each block's own convolutions; the shortcut's 1x1
        downsampling convolution runs beside them (same stride), not after them."""
        layers: list[nn.Module] = []
        for name, module in self.backbone.named_modules():
            if isinstance(module, nn.Conv2d | nn.MaxPool2d) and ".downsample" not in f".{name}":
                layers.append(module)
        return layers

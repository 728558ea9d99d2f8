"""Build any timm ViT by name with overrides: from scratch, hub weights, or a local weights file."""

from __future__ import annotations

import difflib
from functools import partial
from pathlib import Path
from typing import Any

import timm
import torch.nn as nn
from timm.layers import to_2tuple

from anomaly_vit.model.conv_stem import ConvStemEmbed
from anomaly_vit.model.resnet_stem import ResNetStemEmbed

# `model.net.stem` -> the patch embedding class (None: timm's own patchify layer)
STEMS: dict[str, type[nn.Module] | None] = {
    "patch": None,
    "conv": ConvStemEmbed,
    "resnet": ResNetStemEmbed,
}


def create_vit(
    model_name: str,
    num_classes: int,
    pretrained: bool = False,
    weights_path: str | None = None,
    stem: str = "patch",
    stem_channels: list[int] | None = None,
    stem_model: str = "resnet18",
    **overrides: Any,
) -> nn.Module:
    """Create `model_name` from timm with `overrides` (img_size, patch_size, depth, embed_dim, ...).

    `stem="conv"` swaps the patchify layer for a convolutional stem, `stem="resnet"` for the
    first stages of the timm ResNet `stem_model` (both: the same token grid).
    `pretrained=True` loads hub weights (needs a network); `weights_path` loads a local
    .safetensors/.pth file through timm's own loader (offline), adapting the head and position
    embeddings like hub weights.
    """
    if model_name not in timm.list_models():
        close = difflib.get_close_matches(model_name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean {close}?" if close else " See timm.list_models('vit*')."
        raise ValueError(f"model.net.model_name={model_name!r} is not a timm model.{hint}")
    if "img_size" in overrides and "patch_size" in overrides:
        img_h, img_w = to_2tuple(overrides["img_size"])
        patch_h, patch_w = to_2tuple(overrides["patch_size"])
        if img_h % patch_h or img_w % patch_w:
            raise ValueError(
                f"model.net.img_size={overrides['img_size']} is not divisible by "
                f"model.net.patch_size={overrides['patch_size']}: pick sizes so the patches tile the image."
            )
    if stem not in STEMS:
        raise ValueError(
            f"model.net.stem={stem!r}: use one of {list(STEMS)} ('patch': timm's patchify, "
            "'conv': convolutional stem, 'resnet': ResNet stages, a hybrid ViT)."
        )
    kwargs: dict[str, Any] = {"num_classes": num_classes, **overrides}
    if STEMS[stem] is not None:
        options = (
            {"stem_model": stem_model} if stem == "resnet" else {"stem_channels": stem_channels}
        )
        kwargs["embed_layer"] = partial(STEMS[stem], **options)
    if weights_path:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"model.net.weights_path={weights_path} does not exist.")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        pretrained = True
    return timm.create_model(model_name, pretrained=pretrained, **kwargs)

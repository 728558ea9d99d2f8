"""Read an image-sized map from a joint token matrix [B, N, N] the way the model reads its tokens.

Rows: the tokens the classifier head reads. `global_pool='token'` reads the class token (row 0);
'avg' / 'max' / 'avgmax' pool the patch tokens, so their rows are averaged (all rows when the
model pools prefix tokens too, `pool_include_prefix`); an attention-pool head ('map') is
approximated by the mean over the rows it pools; no pooling ('') reads the class token if there
is one, else the patch mean. Columns: the `num_prefix_tokens` prefix tokens (class, register,
distillation) are dropped, the rest reshaped to the patch grid (`patch_embed.grid_size`, or the
grid for the actual image size when the model has `dynamic_img_size`) and upsampled bilinearly
to the image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ReadoutRows = Literal["class_token", "patch_mean", "all_mean"]


@dataclass(frozen=True)
class TokenLayout:
    """Where the patches are in a ViT's token sequence and which rows its head reads."""

    num_prefix_tokens: int
    grid_hw: tuple[int, int]
    rows: ReadoutRows
    has_class_token: bool

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.grid_hw[0] * self.grid_hw[1]


def token_layout(vit: nn.Module, image_hw: tuple[int, int] | None = None) -> TokenLayout:
    """The token layout of a timm ViT, for images of `image_hw` (default: its configured size)."""
    has_class_token = getattr(vit, "cls_token", None) is not None
    pool = getattr(vit, "global_pool", "token")
    include_prefix = bool(getattr(vit, "pool_include_prefix", False))
    if getattr(vit, "attn_pool", None) is not None or pool not in ("token", ""):
        rows: ReadoutRows = "all_mean" if include_prefix else "patch_mean"
    elif pool == "token" or has_class_token:
        rows = "class_token"
    else:
        rows = "patch_mean"
    patch_embed = vit.patch_embed
    if image_hw is not None and getattr(vit, "dynamic_img_size", False):
        grid_hw = tuple(patch_embed.dynamic_feat_size(tuple(image_hw)))
    else:
        grid_hw = tuple(patch_embed.grid_size)
    return TokenLayout(
        num_prefix_tokens=int(vit.num_prefix_tokens),
        grid_hw=(int(grid_hw[0]), int(grid_hw[1])),
        rows=rows,
        has_class_token=has_class_token,
    )


def read_out_tokens(joint_bnn: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Per-patch map on the patch grid: [B, N, N] -> [B, grid_h, grid_w]."""
    num_tokens = joint_bnn.shape[-1]
    if num_tokens != layout.num_tokens:
        raise ValueError(
            f"joint matrix has {num_tokens} tokens but the model layout expects "
            f"{layout.num_tokens} ({layout.num_prefix_tokens} prefix + grid {layout.grid_hw}); "
            "were the images a different size than the model's img_size?"
        )
    prefix = layout.num_prefix_tokens
    if layout.rows == "class_token":
        rows_bn = joint_bnn[:, 0, :]
    elif layout.rows == "patch_mean":
        rows_bn = joint_bnn[:, prefix:, :].mean(dim=1)
    else:
        rows_bn = joint_bnn.mean(dim=1)
    return rows_bn[:, prefix:].reshape(-1, *layout.grid_hw)


def upsample_maps(grid_maps_bhw: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of patch-grid maps to the image size: [B, h, w] -> [B, H, W] fp32."""
    maps_b1hw = F.interpolate(
        grid_maps_bhw[:, None].float(), size=tuple(image_hw), mode="bilinear", align_corners=False
    )
    return maps_b1hw[:, 0]


def read_out_maps(
    joint_bnn: torch.Tensor, layout: TokenLayout, image_hw: tuple[int, int]
) -> torch.Tensor:
    """Image-sized maps [B, H_img, W_img] fp32 from a joint token matrix [B, N, N]."""
    return upsample_maps(read_out_tokens(joint_bnn, layout), image_hw)

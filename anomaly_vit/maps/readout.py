"""Read an image-sized map from a joint token matrix [B, N, N] the way the model reads its tokens.

Rows: the tokens the classifier head reads. `global_pool='token'` reads the class token (row 0);
a pooled head reads its rows weighted by `head_row_weights` when the caller has them (the
tokens each channel's pool takes, weighted by the explained score's gradient: uniform for a
mean pool, the channel winners for a max pool), else the mean of the rows it pools (all rows
when the model pools prefix tokens too, `pool_include_prefix`); no pooling ('') reads the class
token if there is one, else the patch mean. Columns: the `num_prefix_tokens` prefix tokens
(class, register, distillation) are dropped, the rest reshaped to the patch grid
(`patch_embed.grid_size`, or the grid for the actual image size when the model has
`dynamic_img_size`) and drawn at the tokens' receptive-field centres (`token_geometry`).
`map_to_original` takes an input-sized map back through the resize to the photo's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_vit.data.resize import Placement
from anomaly_vit.model.token_geometry import TokenGeometry, place_on_image, token_geometry

ReadoutRows = Literal["class_token", "patch_mean", "all_mean"]


@dataclass(frozen=True)
class TokenLayout:
    """Where the patches are in a ViT's token sequence and which rows its head reads."""

    num_prefix_tokens: int
    grid_hw: tuple[int, int]
    rows: ReadoutRows
    has_class_token: bool
    geometry: TokenGeometry | None = None  # None: bilinear upsampling (patchify's centres)

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
        geometry=token_geometry(patch_embed),
    )


def head_row_weights(grads_bnd: torch.Tensor) -> torch.Tensor:
    """[B, N] row weights summing to 1 (or all 0): the positive part of the explained score's
    gradient at the final tokens, summed over channels. A max pool gets each channel's winning
    token weighted by the head's weight, a mean pool uniform weights, a class token row 0."""
    weights_bn = grads_bnd.float().clamp(min=0).sum(dim=-1)
    return weights_bn / weights_bn.sum(dim=-1, keepdim=True).clamp(min=torch.finfo().tiny)


def read_out_tokens(
    joint_bnn: torch.Tensor, layout: TokenLayout, row_weights_bn: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-patch map on the patch grid: [B, N, N] -> [B, grid_h, grid_w], reading the rows
    `row_weights_bn` [B, N] weighs (`head_row_weights`); the layout's rows where they are all 0."""
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
    if row_weights_bn is not None:
        weighted_bn = torch.einsum("bn,bnm->bm", row_weights_bn.to(joint_bnn), joint_bnn)
        rows_bn = torch.where(row_weights_bn.sum(-1, keepdim=True) > 0, weighted_bn, rows_bn)
    return rows_bn[:, prefix:].reshape(-1, *layout.grid_hw)


def upsample_maps(
    grid_maps_bhw: torch.Tensor,
    image_hw: tuple[int, int],
    geometry: TokenGeometry | None = None,
) -> torch.Tensor:
    """Patch-grid maps drawn at the tokens' centres (`place_on_image`), or upsampled bilinearly
    without a geometry: [B, h, w] -> [B, H, W] fp32."""
    if geometry is not None:
        return place_on_image(grid_maps_bhw, geometry, image_hw)
    maps_b1hw = F.interpolate(
        grid_maps_bhw[:, None].float(), size=tuple(image_hw), mode="bilinear", align_corners=False
    )
    return maps_b1hw[:, 0]


def read_out_maps(
    joint_bnn: torch.Tensor, layout: TokenLayout, image_hw: tuple[int, int]
) -> torch.Tensor:
    """Image-sized maps [B, H_img, W_img] fp32 from a joint token matrix [B, N, N]."""
    return upsample_maps(read_out_tokens(joint_bnn, layout), image_hw, layout.geometry)


def map_to_original(maps_bhw: torch.Tensor, where: Placement) -> torch.Tensor:
    """Input-sized maps [B, H_in, W_in] resampled (bilinear) to the original photo's pixels
    [B, h, w] through the resize `where` describes (`data.resize.placement`); pixels the input
    never saw (cut by a crop) are NaN."""
    (height, width), (in_h, in_w) = where.original_hw, where.input_hw
    (scale_y, scale_x), (off_y, off_x) = where.scale_yx, where.offset_yx
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * scale_y + off_y  # input edge coords
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * scale_x + off_x
    grid_hw2 = torch.stack(torch.meshgrid(2 * xs / in_w - 1, 2 * ys / in_h - 1, indexing="xy"), -1)
    grid = grid_hw2.to(maps_bhw.device).expand(len(maps_bhw), height, width, 2)
    sampled = F.grid_sample(
        maps_bhw[:, None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )[:, 0]
    seen_hw = ((ys >= 0) & (ys <= in_h))[:, None] & ((xs >= 0) & (xs <= in_w))[None, :]
    return sampled.masked_fill(~seen_hw.to(sampled.device), float("nan"))

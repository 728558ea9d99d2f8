"""Where a patch embedding's tokens sit in the input: receptive-field centres of the token grid.

A stem of convolutions and poolings run one after the other (timm's patchify `PatchEmbed`, our
`ConvStemEmbed`, any such stem) centres token i of an axis at input pixel `offset + i * stride`.
One layer with kernel k, stride s, padding p, dilation d centres its output j at its input
position j*s + d*(k-1)/2 - p; composing the layers gives the stem's offset and stride. Patchify
with patch p: offset (p-1)/2, stride p; three 3x3 stride-2 padding-1 convolutions: offset 0,
stride 8. Pixel positions count pixel centres from 0.

Maps drawn from token values (`place_on_image`) and masks pooled to tokens (`pool_to_tokens`)
share this geometry, so a map's peak and the mask loss's positive token land where the token looks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import to_2tuple
from torch import nn

STRIDED_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


@dataclass(frozen=True)
class TokenGeometry:
    """Token (i, j) is centred at input pixel (offset_y + i * stride_y, offset_x + j * stride_x)."""

    offset_yx: tuple[float, float]
    stride_yx: tuple[int, int]

    def centres(self, grid_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel centres of the token rows [gh] and columns [gw]."""
        return tuple(
            offset + stride * torch.arange(size, dtype=torch.float32)
            for offset, stride, size in zip(self.offset_yx, self.stride_yx, grid_hw, strict=True)
        )


def _layer_geometry(layer: nn.Module) -> tuple[tuple[float, float], tuple[int, int]]:
    """(offset, stride) per axis of one strided layer."""
    kernel = to_2tuple(layer.kernel_size)
    stride = to_2tuple(layer.stride if layer.stride is not None else layer.kernel_size)
    dilation = to_2tuple(getattr(layer, "dilation", 1))
    padding = layer.padding
    if isinstance(padding, str):  # 'valid' pads nothing; 'same' (stride 1) keeps the centres
        same = tuple(d * (k - 1) / 2 for k, d in zip(kernel, dilation, strict=True))
        padding = (0, 0) if padding == "valid" else same
    padding = to_2tuple(padding)
    offset = tuple(d * (k - 1) / 2 - p for k, d, p in zip(kernel, dilation, padding, strict=True))
    return offset, (int(stride[0]), int(stride[1]))


def token_geometry(patch_embed: nn.Module) -> TokenGeometry:
    """The token centres of a patch embedding whose strided layers run in registration order
    (or, for a residual stem, the order its `main_path_layers()` gives)."""
    offset, stride = [0.0, 0.0], [1, 1]
    if hasattr(patch_embed, "main_path_layers"):  # a residual stem: its shortcuts run beside
        layers = patch_embed.main_path_layers()
    else:
        layers = [m for m in patch_embed.modules() if isinstance(m, STRIDED_LAYERS)]
    if not layers:
        raise TypeError(
            f"{type(patch_embed).__name__} has no Conv2d or pooling layer to place its tokens by."
        )
    for layer in layers:
        (oy, ox), (sy, sx) = _layer_geometry(layer)
        offset = [offset[0] + stride[0] * oy, offset[1] + stride[1] * ox]
        stride = [stride[0] * sy, stride[1] * sx]
    return TokenGeometry((offset[0], offset[1]), (stride[0], stride[1]))


def _axis_grid(size: int, grid: int, offset: float, stride: int) -> torch.Tensor:
    """grid_sample coordinates (align_corners=True) of `size` pixels between `grid` token centres."""
    if grid == 1:
        return torch.zeros(size)
    tokens = (torch.arange(size, dtype=torch.float32) - offset) / stride
    return 2 * tokens / (grid - 1) - 1


def place_on_image(
    grid_bhw: torch.Tensor, geometry: TokenGeometry, image_hw: tuple[int, int]
) -> torch.Tensor:
    """Token values [B, gh, gw] drawn at their centres and interpolated bilinearly between them
    (beyond the outermost centres the edge value holds): [B, H, W] fp32."""
    (height, width), (gh, gw) = image_hw, grid_bhw.shape[-2:]
    ys = _axis_grid(height, gh, geometry.offset_yx[0], geometry.stride_yx[0])
    xs = _axis_grid(width, gw, geometry.offset_yx[1], geometry.stride_yx[1])
    sample_1hw2 = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # (x, y)
    # the batch rides as channels of one sample: the same grid for every map, and an exported
    # graph (`deploy.network`) keeps a dynamic batch size
    placed = F.grid_sample(
        grid_bhw[None].float(),
        sample_1hw2.to(grid_bhw.device),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return placed[0]


def nearest_token(size: int, grid: int, offset: float, stride: int) -> torch.Tensor:
    """The token each of `size` pixels of an axis belongs to: the one whose stride-wide window
    [centre - stride/2, centre + stride/2) holds it; pixels beyond the outer windows go to the
    edge token."""
    pixels = torch.arange(size, dtype=torch.float32)
    index = torch.floor((pixels - offset) / stride + 0.5).long()
    return index.clamp(0, grid - 1)


def pool_to_tokens(
    masks_nhw: torch.Tensor, geometry: TokenGeometry, grid_hw: tuple[int, int]
) -> torch.Tensor:
    """(N, gh, gw) bool: True where a token's window (`nearest_token`) holds a mask pixel."""
    height, width = masks_nhw.shape[-2:]
    rows = nearest_token(height, grid_hw[0], geometry.offset_yx[0], geometry.stride_yx[0])
    cols = nearest_token(width, grid_hw[1], geometry.offset_yx[1], geometry.stride_yx[1])
    row_onehot = F.one_hot(rows, grid_hw[0]).float().to(masks_nhw.device)  # [H, gh]
    col_onehot = F.one_hot(cols, grid_hw[1]).float().to(masks_nhw.device)  # [W, gw]
    counts = row_onehot.T @ masks_nhw.float() @ col_onehot  # defect pixels per token
    return counts > 0

"""Learn from masks: a per-token defect score trained against pixel masks pooled to the tokens.

A light linear head reads each final patch token and says "defect here". Where a training
image has a mask (and good images, whose mask is known to be empty) the token scores are
trained against the mask pooled to the token grid: a token is positive when the stride-wide
window centred on its receptive field (`token_geometry`, the read-out's geometry) holds a defect
pixel. Images without a known mask add nothing. The image's defect score can then
read the class head, the most defective token, or both (`decision`). Tabernik et al. (2019)
showed on KolektorSDD that pixel-level supervision makes ~50 defective images enough.
"""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn as nn
import torch.nn.functional as F

from anomaly_vit.model.token_geometry import TokenGeometry, pool_to_tokens


class Decision(StrEnum):
    """How the image's defect score is read (`model.mask_loss.decision`)."""

    HEAD = "head"  # 1 - p(good) of the class head
    TOKENS = "tokens"  # sigmoid of the highest token score
    MIX = "mix"  # the mean of both


class MaskSources(StrEnum):
    """Which training images' masks teach the token scores (`model.mask_loss.sources`)."""

    REAL = "real"
    SYNTHETIC = "synthetic"
    BOTH = "both"


def pool_mask_to_grid(
    masks_nhw: torch.Tensor, grid_hw: tuple[int, int], geometry: TokenGeometry | None = None
) -> torch.Tensor:
    """(N, gh*gw) float: 1 where a token's window (`token_geometry.pool_to_tokens`) holds a mask
    pixel. Without a geometry the tokens are patches tiling the mask (patchify)."""
    height, width = masks_nhw.shape[-2:]
    gh, gw = grid_hw
    if height % gh or width % gw:
        raise ValueError(f"masks of {height}x{width} px do not tile a {gh}x{gw} token grid")
    if geometry is None:
        stride = (height // gh, width // gw)
        geometry = TokenGeometry(((stride[0] - 1) / 2, (stride[1] - 1) / 2), stride)
    return pool_to_tokens(masks_nhw, geometry, (gh, gw)).float().flatten(1)


def token_mask_loss(
    token_logits: torch.Tensor, targets: torch.Tensor, known: torch.Tensor
) -> torch.Tensor:
    """Binary cross-entropy of token scores vs pooled masks, averaged over the tokens of the
    images whose mask is known; exactly 0 when no image in the batch has one."""
    if not bool(known.any()):
        return token_logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(token_logits[known], targets[known])


class TokenDefectHead(nn.Module):
    """A linear defect score per final patch token."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(embed_dim, 1)

    def forward(self, patch_tokens_bnd: torch.Tensor) -> torch.Tensor:
        return self.proj(patch_tokens_bnd).squeeze(-1)

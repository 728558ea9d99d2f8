"""Self-supervised objectives on a timm ViT: masked image modelling, labels unused.

- `MaskedAutoencoder` (He et al. 2022, facebookresearch/mae `models_mae.py`): the encoder sees
  only the visible 25 % of the tokens; a light transformer decoder fills in mask tokens and
  predicts the pixels of the masked patches; loss: MSE on per-patch normalised pixels.
- `SimMIM` (Xie et al. 2022): every token goes through the encoder, masked ones replaced by a
  learned mask token; a linear head predicts the masked patches' pixels; loss: L1.

Both blank the masked patches' PIXELS before the patch embedding: a conv stem's receptive field
(15 px for three stride-2 3x3 stages) would otherwise carry a few pixels of every masked patch
into its visible neighbours' tokens, and the task would leak its own answer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import to_2tuple
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from anomaly_vit.errors import ConfigError


def random_patch_mask(
    batch: int, num_patches: int, ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bool [B, N]: exactly round(N * ratio) masked patches per image, at random (CPU)."""
    n_masked = min(num_patches - 1, max(1, round(num_patches * ratio)))
    noise = torch.rand(batch, num_patches, generator=generator)
    order = noise.argsort(dim=1)
    mask = torch.zeros(batch, num_patches, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_masked], True)
    return mask


def patchify(images_bchw: torch.Tensor, patch_hw: tuple[int, int]) -> torch.Tensor:
    """[B, C, H, W] -> [B, N, ph * pw * C], patches in row-major order (the token order)."""
    ph, pw = patch_hw
    b, c, h, w = images_bchw.shape
    x = images_bchw.reshape(b, c, h // ph, ph, w // pw, pw)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // ph) * (w // pw), ph * pw * c)


def blank_masked_pixels(
    images_bchw: torch.Tensor, mask_bn: torch.Tensor, patch_hw: tuple[int, int]
) -> torch.Tensor:
    """Images with the masked patches set to 0 (the mean colour of normalised input)."""
    b, _, h, w = images_bchw.shape
    grid = mask_bn.view(b, 1, h // patch_hw[0], w // patch_hw[1]).to(images_bchw.dtype)
    keep = 1.0 - F.interpolate(grid, scale_factor=patch_hw, mode="nearest")
    return images_bchw * keep


def _tokens(vit: nn.Module, images_bchw: torch.Tensor) -> torch.Tensor:
    """The patch embedding as [B, N, D] (timm may return NHWC with dynamic sizes)."""
    x = vit.patch_embed(images_bchw)
    return x.flatten(1, 2) if x.ndim == 4 else x


def _encode(vit: nn.Module, tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Position embedding (and prefix tokens), optionally keep only `keep` [B, K] patch tokens,
    then the blocks and the final norm: timm's `forward_features` after the patch embedding."""
    x = vit._pos_embed(tokens)
    if keep is not None:
        prefix, patches = x[:, : vit.num_prefix_tokens], x[:, vit.num_prefix_tokens :]
        index = keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1])
        x = torch.cat([prefix, patches.gather(1, index)], dim=1)
    x = vit.norm_pre(x)
    x = vit.blocks(x)
    return vit.norm(x)


def _pixel_targets(images_bchw: torch.Tensor, patch_hw, normalise: bool) -> torch.Tensor:
    target = patchify(images_bchw, patch_hw)
    if normalise:  # MAE's norm_pix_loss: each patch to zero mean, unit variance
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    return target


class MaskedAutoencoder(nn.Module):
    """MAE: encode the visible tokens, decode all, MSE on the masked patches' pixels."""

    def __init__(
        self,
        embed_dim: int,
        grid_hw: tuple[int, int],
        patch_hw: tuple[int, int],
        mask_ratio: float = 0.75,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        norm_pix_loss: bool = True,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.mask_ratio, self.norm_pix_loss = float(mask_ratio), bool(norm_pix_loss)
        self.grid_hw, self.patch_hw = tuple(grid_hw), to_2tuple(patch_hw)
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        pos = build_sincos2d_pos_embed(list(self.grid_hw), dim=decoder_dim)  # fixed, as in MAE
        self.register_buffer("decoder_pos_embed", pos.unsqueeze(0), persistent=False)
        self.decoder_blocks = nn.Sequential(
            *[Block(decoder_dim, decoder_heads, qkv_bias=True) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch_hw[0] * self.patch_hw[1] * in_chans)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, vit: nn.Module, images_bchw: torch.Tensor, mask_bn: torch.Tensor
    ) -> torch.Tensor:
        b, n = mask_bn.shape
        keep = (~mask_bn).nonzero()[:, 1].view(b, -1)  # visible patch indices, ascending
        tokens = _tokens(vit, blank_masked_pixels(images_bchw, mask_bn, self.patch_hw))
        latent = _encode(vit, tokens, keep)[:, vit.num_prefix_tokens :]
        visible = self.decoder_embed(latent)
        x = self.mask_token.expand(b, n, -1).clone()
        x = x.scatter(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]), visible)
        x = self.decoder_blocks(x + self.decoder_pos_embed.to(x.dtype))
        pred = self.decoder_pred(self.decoder_norm(x))
        target = _pixel_targets(images_bchw, self.patch_hw, self.norm_pix_loss)
        per_patch = (pred - target).pow(2).mean(dim=-1)
        return (per_patch * mask_bn).sum() / mask_bn.sum()


class SimMIM(nn.Module):
    """SimMIM: mask token in the encoder, linear pixel head, L1 on the masked patches."""

    def __init__(
        self,
        embed_dim: int,
        grid_hw: tuple[int, int],
        patch_hw: tuple[int, int],
        mask_ratio: float = 0.6,
        norm_pix_loss: bool = False,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.mask_ratio, self.norm_pix_loss = float(mask_ratio), bool(norm_pix_loss)
        self.grid_hw, self.patch_hw = tuple(grid_hw), to_2tuple(patch_hw)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.decoder_pred = nn.Linear(embed_dim, self.patch_hw[0] * self.patch_hw[1] * in_chans)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, vit: nn.Module, images_bchw: torch.Tensor, mask_bn: torch.Tensor
    ) -> torch.Tensor:
        tokens = _tokens(vit, blank_masked_pixels(images_bchw, mask_bn, self.patch_hw))
        w = mask_bn.unsqueeze(-1).to(tokens.dtype)
        tokens = tokens * (1 - w) + self.mask_token.to(tokens.dtype) * w
        latent = _encode(vit, tokens)[:, vit.num_prefix_tokens :]
        pred = self.decoder_pred(latent)
        target = _pixel_targets(images_bchw, self.patch_hw, self.norm_pix_loss)
        per_patch = (pred - target).abs().mean(dim=-1)
        return (per_patch * mask_bn).sum() / mask_bn.sum()


# `pretrain.objective.kind` -> the objective class
OBJECTIVES: dict[str, type[nn.Module]] = {"mae": MaskedAutoencoder, "simmim": SimMIM}


def build_objective(vit: nn.Module, kind: str = "mae", **options) -> nn.Module:
    """The objective `kind` sized for `vit` (its width, token grid and patch size)."""
    if kind not in OBJECTIVES:
        raise ConfigError(f"pretrain.objective.kind={kind!r}: use one of {list(OBJECTIVES)}.")
    embed = vit.patch_embed
    try:
        return OBJECTIVES[kind](
            embed_dim=vit.embed_dim,
            grid_hw=tuple(embed.grid_size),
            patch_hw=to_2tuple(embed.patch_size),
            **options,
        )
    except TypeError as error:  # an option of the other objective (e.g. decoder_dim for simmim)
        raise ConfigError(
            f"pretrain.objective ({kind}): {error}; pick the objective with ssl={kind} "
            "(conf/ssl/) and override only its own keys."
        ) from None

"""Attention rollout (Abnar & Zuidema 2020): how much each token's input reaches each token's output.

Per layer: fuse the heads (mean, max or min), optionally discard each row's weakest entries, add
the identity for the residual connection and renormalise every row to sum to one. Then multiply
the layers with later layers on the left, R = A_L ... A_2 A_1, so that R[i, j] is the share of
input token j in output token i. All functions are batched and work on [B, ...] tensors.

Two departures from the public reference implementation (jacobgil/vit-explain) on purpose:
- rows are renormalised with `keepdim=True`; without it the division broadcasts along the wrong
  axis, which is invisible for mean fusion (rows already sum to 2) but wrong for max and min;
- the discard works per row and never drops an entry in the class token's row or column
  (the reference only spares the flattened index 0, the [cls, cls] entry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

import torch

from anomaly_vit.errors import enum_value


class HeadFusion(StrEnum):
    """`head_fusion`: how one layer's heads become one attention matrix."""

    MEAN = "mean"
    MAX = "max"
    MIN = "min"


HEAD_FUSIONS: dict[HeadFusion, Callable[[torch.Tensor], torch.Tensor]] = {
    HeadFusion.MEAN: lambda attn_bhnn: attn_bhnn.mean(dim=1),
    HeadFusion.MAX: lambda attn_bhnn: attn_bhnn.amax(dim=1),
    HeadFusion.MIN: lambda attn_bhnn: attn_bhnn.amin(dim=1),
}


def fuse_heads(attn_bhnn: torch.Tensor, head_fusion: str = HeadFusion.MEAN) -> torch.Tensor:
    """Fuse the heads of one layer's attention: [B, H, N, N] -> [B, N, N]."""
    return HEAD_FUSIONS[enum_value(HeadFusion, head_fusion, "head_fusion")](attn_bhnn)


def discard_lowest(
    attn_bnn: torch.Tensor, discard_ratio: float, num_protected_tokens: int = 1
) -> torch.Tensor:
    """Zero the lowest `discard_ratio` share of each row's entries, sparing the protected tokens.

    The first `num_protected_tokens` tokens (the class token: 1; none: 0) are protected: entries
    in their rows or columns are never dropped. In every other row, floor(ratio * (N - P))
    of the N - P unprotected entries are dropped, the smallest first (ties broken by position).
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    num_tokens = attn_bnn.shape[-1]
    num_candidates = num_tokens - num_protected_tokens
    num_drop = int(discard_ratio * num_candidates)
    if num_drop == 0:
        return attn_bnn
    protected_nn = torch.zeros(num_tokens, num_tokens, dtype=torch.bool, device=attn_bnn.device)
    protected_nn[:num_protected_tokens, :] = True
    protected_nn[:, :num_protected_tokens] = True
    ranked_bnn = attn_bnn.masked_fill(protected_nn, float("inf"))
    order_bnn = ranked_bnn.argsort(dim=-1, stable=True)[..., :num_drop]
    drop_bnn = torch.zeros_like(attn_bnn, dtype=torch.bool).scatter_(-1, order_bnn, True)
    drop_bnn &= ~protected_nn
    return attn_bnn.masked_fill(drop_bnn, 0.0)


def add_residual(attn_bnn: torch.Tensor) -> torch.Tensor:
    """A + I with every row renormalised to sum to one (keepdim: divide each row by its own sum)."""
    eye_nn = torch.eye(attn_bnn.shape[-1], dtype=attn_bnn.dtype, device=attn_bnn.device)
    with_residual_bnn = attn_bnn + eye_nn
    return with_residual_bnn / with_residual_bnn.sum(dim=-1, keepdim=True)


def attention_rollout(
    attn_per_layer: Sequence[torch.Tensor],
    head_fusion: str = HeadFusion.MEAN,
    discard_ratio: float = 0.0,
    start_layer: int = 0,
    num_protected_tokens: int = 1,
) -> torch.Tensor:
    """Rollout of per-layer attention [B, H, N, N] into the joint attention R [B, N, N] (fp32).

    `start_layer` skips the first layers (R = A_L ... A_start). Read a map from R with
    `readout.read_out_maps`.
    """
    layers = list(attn_per_layer)[start_layer:]
    if not layers:
        raise ValueError(f"start_layer={start_layer} leaves no layer of {len(attn_per_layer)}")
    joint_bnn: torch.Tensor | None = None
    with torch.autocast(device_type=layers[0].device.type, enabled=False):
        for attn_bhnn in layers:
            fused_bnn = fuse_heads(attn_bhnn.float(), head_fusion)
            fused_bnn = discard_lowest(fused_bnn, discard_ratio, num_protected_tokens)
            layer_bnn = add_residual(fused_bnn)
            joint_bnn = layer_bnn if joint_bnn is None else layer_bnn @ joint_bnn
    return joint_bnn

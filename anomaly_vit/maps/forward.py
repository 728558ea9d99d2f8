"""One forward pass of a model over a batch, and what the map kinds read from it.

`locate` finds the ViT inside the model and derives its token layout ONCE per batch
(`MapBatch`). `captured_pass` runs the model once with every layer's attention captured (with
the gradient of the explained score when a kind needs it or a pooled head's rows are weighed);
`token_pass` runs it once through its token head. Each yields a `ForwardPass`, which the kinds'
functions (`maps.kinds`) read inside the pass (where autocast stays off). A pass may run inside
`torch.inference_mode()` (Lightning validation): the gradient pass leaves it locally.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from timm.layers import to_2tuple
from torch import nn

from anomaly_vit.maps.capture import (
    capture_attention,
    find_vision_transformer,
    gradients_enabled,
    model_input,
)
from anomaly_vit.maps.readout import TokenLayout, head_row_weights, token_layout
from anomaly_vit.maps.relevance import TargetSpec, target_scores
from anomaly_vit.maps.rollout import HeadFusion


@dataclass(frozen=True)
class MapOptions:
    """How maps are drawn: rollout options (`rollout.attention_rollout`), the first layer of
    rollout and relevance, and the index of the "good" class (defect-vs-good scores)."""

    head_fusion: str = HeadFusion.MEAN
    discard_ratio: float = 0.0
    start_layer: int = 0
    good_class: int = 0


@dataclass(frozen=True)
class MapBatch:
    """A batch as the model takes it, with the model's ViT and its token layout for that size."""

    model: nn.Module
    vit: nn.Module
    layout: TokenLayout
    images_bchw: torch.Tensor

    @property
    def image_hw(self) -> tuple[int, int]:
        return int(self.images_bchw.shape[-2]), int(self.images_bchw.shape[-1])


def locate(model: nn.Module, images_bchw: torch.Tensor) -> MapBatch:
    """The ViT in `model` and its token layout for the size of `images_bchw`, found once."""
    vit = find_vision_transformer(model)
    image_hw = (int(images_bchw.shape[-2]), int(images_bchw.shape[-1]))
    return MapBatch(model, vit, token_layout(vit, image_hw), images_bchw)


def patch_size_hw(model: nn.Module) -> tuple[int, int]:
    """Patch size of the ViT in `model` (pixels, height and width)."""
    return to_2tuple(find_vision_transformer(model).patch_embed.patch_size)


def image_size_hw(model: nn.Module) -> tuple[int, int]:
    """Input image size of the ViT in `model` (pixels, height and width)."""
    return to_2tuple(find_vision_transformer(model).patch_embed.img_size)


def probabilities(logits_bk: torch.Tensor) -> torch.Tensor:
    """Class probabilities: softmax over classes, or the sigmoid of a single-logit head."""
    if logits_bk.shape[-1] == 1:
        return logits_bk.sigmoid()
    return logits_bk.softmax(dim=-1)


@dataclass
class ForwardPass:
    """What one forward pass leaves for the map kinds (fp32; gradients and attention detached)."""

    batch: MapBatch
    options: MapOptions
    logits_bk: torch.Tensor
    attn_per_layer: Sequence[torch.Tensor] = ()  # [B, H, N, N] per layer (captured passes)
    attn_grads: Sequence[torch.Tensor | None] = ()  # d(score)/d(attention), with gradients
    final_tokens_bnd: torch.Tensor | None = None  # the tokens the head pools (`vit.norm`)
    row_weights_bn: torch.Tensor | None = None  # a pooled head's rows (`head_row_weights`)
    token_logits_bn: torch.Tensor | None = None  # the token head's logits (`token_pass`)


@contextmanager
def captured_pass(
    batch: MapBatch,
    targets: TargetSpec,
    options: MapOptions,
    *,
    gradients: bool,
    head_rows: bool,
) -> Iterator[ForwardPass]:
    """One forward pass with every layer's attention captured; read the pass inside the block.

    Args:
        targets: the score explained (`relevance.target_scores`): "predicted", "contrast" or
            a LongTensor [B] of classes.
        gradients: take d(score)/d(attention) (`ForwardPass.attn_grads`).
        head_rows: a kind reads the tokens' rows as the head does: a pooled head's row weights
            come from the score's gradient at the final tokens (`readout.head_row_weights`).
    """
    model, layout = batch.model, batch.layout
    pooled_rows = head_rows and layout.rows != "class_token"
    row_weights_bn = None
    attn_grads: Sequence[torch.Tensor | None] = ()
    with capture_attention(model, batch.vit) as record:
        if gradients or pooled_rows:
            with gradients_enabled():
                logits_bk = model(model_input(model, batch.images_bchw, requires_grad=True))
                attn_per_layer = record.attn_bhnn()
                score = target_scores(logits_bk, targets, options.good_class).sum()
                grads = torch.autograd.grad(
                    score, [*attn_per_layer, record.final_tokens_bnd], allow_unused=True
                )
                attn_per_layer = [a.detach().float() for a in attn_per_layer]
                if pooled_rows and grads[-1] is not None:
                    row_weights_bn = head_row_weights(grads[-1])
                attn_grads = grads[:-1] if gradients else ()
            logits_bk = logits_bk.detach().float()
        else:
            with torch.no_grad():
                logits_bk = model(model_input(model, batch.images_bchw, requires_grad=False))
                logits_bk = logits_bk.float()
            attn_per_layer = record.detached_fp32()
        yield ForwardPass(
            batch,
            options,
            logits_bk,
            attn_per_layer=attn_per_layer,
            attn_grads=attn_grads,
            final_tokens_bnd=record.final_tokens_bnd,
            row_weights_bn=row_weights_bn,
        )


@contextmanager
def token_pass(batch: MapBatch, options: MapOptions) -> Iterator[ForwardPass]:
    """One gradient-free forward pass through the model's token head (`forward_with_tokens`)."""
    if getattr(batch.model, "token_head", None) is None:
        raise ValueError(
            "map kind 'tokens' needs a model trained with the mask loss "
            "(model.mask_loss.weight > 0); drop 'tokens' from the map kinds."
        )
    with torch.no_grad():
        logits_bk, token_logits_bn = batch.model.forward_with_tokens(batch.images_bchw)
    yield ForwardPass(batch, options, logits_bk.float(), token_logits_bn=token_logits_bn)

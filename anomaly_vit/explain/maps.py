"""One call from a model and a batch of images to attention maps and the predictions they explain.

`attention_maps` runs the model once (with gradients when a gradient map is requested or a
pooled head's rows are weighed), captures every layer's attention and the final tokens on the
way, and returns the requested map kinds as image-sized [B, H, W] fp32 tensors drawn at the
tokens' centres, beside the logits and probabilities of that same pass. It may be called
inside `torch.inference_mode()` (Lightning validation): the gradient pass leaves it locally.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from anomaly_vit.errors import ConfigError
from anomaly_vit.explain.capture import (
    capture_attention,
    find_vision_transformer,
    gradients_enabled,
    model_input,
)
from anomaly_vit.explain.readout import (
    TokenLayout,
    head_row_weights,
    read_out_tokens,
    token_layout,
    upsample_maps,
)
from anomaly_vit.explain.relevance import (
    TargetSpec,
    gradient_relevance,
    target_classes,
    target_scores,
)
from anomaly_vit.explain.rollout import HeadFusion, attention_rollout

MAP_METHODS = ("rollout", "relevance", "evidence")  # what `MapKind.method` may name


def probabilities(logits_bk: torch.Tensor) -> torch.Tensor:
    """Class probabilities: softmax over classes, or the sigmoid of a single-logit head."""
    if logits_bk.shape[-1] == 1:
        return logits_bk.sigmoid()
    return logits_bk.softmax(dim=-1)


def token_evidence(
    vit: nn.Module, final_tokens_bnd: torch.Tensor, layout: TokenLayout, good_class: int
) -> torch.Tensor:
    """The head applied to each final patch token (CAM for ViTs): its defect-vs-good evidence
    (`target_scores` "contrast") on the patch grid [B, h, w]."""
    patches_bnd = final_tokens_bnd[:, layout.num_prefix_tokens :].float()
    with torch.no_grad():
        logits_bnk = vit.head(vit.fc_norm(patches_bnd)).float()
    evidence_bn = target_scores(logits_bnk.flatten(0, 1), "contrast", good_class)
    return evidence_bn.reshape(-1, *layout.grid_hw)


def attention_maps(
    model: nn.Module,
    images_bchw: torch.Tensor,
    kinds: Sequence[str] = ("rollout", "relevance"),
    targets: TargetSpec = None,
    *,
    head_fusion: str = HeadFusion.MEAN,
    discard_ratio: float = 0.0,
    start_layer: int = 0,
    good_class: int = 0,
) -> dict[str, torch.Tensor]:
    """Maps of the requested kinds and the predictions of the same forward pass.

    Args:
        model: a timm ViT, or a module wrapping one whose forward returns logits [B, K].
        images_bchw: the batch, as the model takes it (normalised).
        kinds: any of "rollout" (Abnar & Zuidema), "relevance" (Chefer et al., gradient) and
            "evidence" (`token_evidence`: the head on each final token).
        targets: what "relevance" explains, and whose gradient weighs a pooled head's rows
            (`readout.head_row_weights`): None / "predicted" (arg-max class), a LongTensor [B]
            of classes (e.g. the true labels), or "contrast" (defect vs `good_class`).
        head_fusion, discard_ratio, start_layer: rollout options (see `rollout.attention_rollout`);
            `start_layer` applies to relevance too.
        good_class: index of the "good" class, for targets="contrast" and "evidence".

    Returns:
        {kind: maps [B, H, W] fp32 and f"{kind}_grid": the same on the patch grid [B, h, w]
        for each requested kind, "logits": [B, K], "probs": [B, K],
        "preds": [B] arg-max classes, and with "relevance" "relevance_targets": [B] the class
        explained per sample (-1 for "contrast")}. Everything is detached.
    """
    unknown = sorted(set(kinds) - set(MAP_METHODS))
    if unknown:
        raise ConfigError(f"unknown map kinds {unknown}; choose from {list(MAP_METHODS)}")
    vit = find_vision_transformer(model)
    image_hw = (int(images_bchw.shape[-2]), int(images_bchw.shape[-1]))
    layout = token_layout(vit, image_hw)
    pooled_rows = layout.rows != "class_token" and bool({"rollout", "relevance"} & set(kinds))
    row_weights_bn = None
    grids: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}

    with capture_attention(model) as record:
        if "relevance" in kinds or pooled_rows:
            with gradients_enabled():
                logits_bk = model(model_input(model, images_bchw, requires_grad=True))
                attn_per_layer = record.attn_bhnn()
                score = target_scores(logits_bk, targets, good_class).sum()
                grads = torch.autograd.grad(
                    score, [*attn_per_layer, record.final_tokens_bnd], allow_unused=True
                )
                attn_per_layer = [a.detach().float() for a in attn_per_layer]
                if pooled_rows and grads[-1] is not None:
                    row_weights_bn = head_row_weights(grads[-1])
                if "relevance" in kinds:
                    relevance_bnn = gradient_relevance(attn_per_layer, grads[:-1], start_layer)
                    grids["relevance"] = read_out_tokens(relevance_bnn, layout, row_weights_bn)
            logits_bk = logits_bk.detach().float()
            if "relevance" in kinds:
                classes_b = target_classes(logits_bk, targets)
                out["relevance_targets"] = (
                    classes_b
                    if classes_b is not None
                    else torch.full_like(logits_bk[:, 0], -1, dtype=torch.long)
                )
        else:
            with torch.no_grad():
                logits_bk = model(model_input(model, images_bchw, requires_grad=False)).float()
            attn_per_layer = record.detached_fp32()

        if "rollout" in kinds:  # still inside: autocast stays off for the products
            joint_bnn = attention_rollout(
                attn_per_layer,
                head_fusion=head_fusion,
                discard_ratio=discard_ratio,
                start_layer=start_layer,
                num_protected_tokens=1 if layout.has_class_token else 0,
            )
            grids["rollout"] = read_out_tokens(joint_bnn, layout, row_weights_bn)
        if "evidence" in kinds:
            grids["evidence"] = token_evidence(vit, record.final_tokens_bnd, layout, good_class)
    for kind, grid_bhw in grids.items():
        out[f"{kind}_grid"] = grid_bhw.detach()
        out[kind] = upsample_maps(out[f"{kind}_grid"], image_hw, layout.geometry)
    out["logits"] = logits_bk
    out["probs"] = probabilities(logits_bk)
    out["preds"] = logits_bk.argmax(dim=-1)
    return out

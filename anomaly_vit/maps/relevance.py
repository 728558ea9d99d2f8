"""Class-specific gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021).

"Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
Transformers", rule for self-attention: start from R = I and, layer by layer from the first,

    Ā = mean_heads((∂y/∂A ⊙ A)⁺)      R ← R + Ā · R

where A is a layer's post-softmax attention and y the score being explained. Unlike rollout, the
map depends on the class: attention that does not move the target score gets no relevance.

The score y per sample (`target_scores`) is one of
- "predicted": the logit of the arg-max class;
- a LongTensor [B] of class indices (e.g. the true labels): that class's logit;
- "contrast": defect-vs-good evidence, y = logsumexp(logits of all classes except `good_class`)
  - logit[good_class] (= log p(defect) - log p(good) under the softmax; for two classes simply
  l_defect - l_good). With a single output (a binary head) y is that logit.

Batched with one backward pass: the model runs in eval mode, where samples do not interact
(LayerNorm is per token), so the gradient of sum_b y_b with respect to sample b's attention is
the gradient of y_b alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

TargetSpec = Literal["predicted", "contrast"] | torch.Tensor | None


def target_classes(logits_bk: torch.Tensor, targets: TargetSpec) -> torch.Tensor | None:
    """The class index explained per sample [B] (None for the class-free "contrast" score)."""
    if isinstance(targets, torch.Tensor):
        classes_b = targets.to(device=logits_bk.device, dtype=torch.long).reshape(-1)
        if classes_b.shape[0] != logits_bk.shape[0]:
            raise ValueError(
                f"targets has {classes_b.shape[0]} entries for a batch of {logits_bk.shape[0]}"
            )
        return classes_b
    if targets is None or targets == "predicted":
        return logits_bk.argmax(dim=-1)
    if targets == "contrast":
        return None
    raise ValueError(
        f"targets must be 'predicted', 'contrast' or a tensor of classes, got {targets!r}"
    )


def target_scores(
    logits_bk: torch.Tensor, targets: TargetSpec = None, good_class: int = 0
) -> torch.Tensor:
    """The score y [B] whose attention relevance is explained (see the module docstring)."""
    num_classes = logits_bk.shape[-1]
    if num_classes == 1:
        return logits_bk[:, 0]
    classes_b = target_classes(logits_bk, targets)
    if classes_b is not None:
        return logits_bk.gather(-1, classes_b[:, None])[:, 0]
    defect_k = [k for k in range(num_classes) if k != good_class]  # static: exports (deploy)
    defect_evidence_b = logits_bk[:, defect_k].logsumexp(dim=-1)
    return defect_evidence_b - logits_bk[:, good_class]


def gradient_relevance(
    attn_per_layer: Sequence[torch.Tensor],
    grad_per_layer: Sequence[torch.Tensor],
    start_layer: int = 0,
) -> torch.Tensor:
    """Chefer et al.'s relevance R [B, N, N] from per-layer attention and dy/dA, both [B, H, N, N]."""
    if len(attn_per_layer) != len(grad_per_layer):
        raise ValueError(
            f"{len(attn_per_layer)} attention layers but {len(grad_per_layer)} gradient layers"
        )
    pairs = list(zip(attn_per_layer, grad_per_layer, strict=True))[start_layer:]
    if not pairs:
        raise ValueError(f"start_layer={start_layer} leaves no layer of {len(attn_per_layer)}")
    batch, _, num_tokens, _ = pairs[0][0].shape
    first = pairs[0][0]
    relevance_bnn = (
        torch.eye(num_tokens, dtype=torch.float32, device=first.device)
        .expand(batch, num_tokens, num_tokens)
        .clone()
    )
    with torch.autocast(device_type=first.device.type, enabled=False):
        for attn_bhnn, grad_bhnn in pairs:
            weighted_bnn = (grad_bhnn.float() * attn_bhnn.float()).clamp(min=0).mean(dim=1)
            relevance_bnn = relevance_bnn + weighted_bnn @ relevance_bnn
    return relevance_bnn

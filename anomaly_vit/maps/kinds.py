"""The map kinds: ONE registry of what each kind draws and what it needs, and `explain_images`.

Kinds (`MAP_KINDS`; the `kinds` of conf/callbacks/default.yaml `maps`, conf/explain.yaml and
conf/train.yaml `explain_scores`):
- "rollout": attention rollout, class-agnostic (how input patches flow to the token the head reads);
- "relevance": gradient-weighted relevance of the predicted class (Chefer et al.);
- "contrast": gradient-weighted relevance of the defect-vs-good evidence (log p(defect) - log p(good));
- "evidence": the class head applied to each final token, its defect-vs-good logit (CAM for ViTs;
  what a max-pooled head reads);
- "tokens": the mask loss's per-token defect probability (models trained with the mask loss).

A kind is a function from a `forward.ForwardPass` to its map on the patch grid [B, h, w], and one
line of `MAP_KINDS` saying what it needs: the forward pass it reads (the score that pass
explains, or the token head), the attention's gradient, the head's rows. Kinds reading the same
pass share it. Maps are drawn at the tokens' receptive-field centres (`model.token_geometry`).
A new kind: its function here, its line in `MAP_KINDS`, its test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from anomaly_vit.errors import ConfigError
from anomaly_vit.maps.forward import (
    ForwardPass,
    MapBatch,
    MapOptions,
    captured_pass,
    locate,
    probabilities,
    token_pass,
)
from anomaly_vit.maps.readout import read_out_tokens, upsample_maps
from anomaly_vit.maps.relevance import (
    TargetSpec,
    gradient_relevance,
    target_classes,
    target_scores,
)
from anomaly_vit.maps.rollout import HeadFusion, attention_rollout

TOKEN_HEAD = "token_head"  # `MapKind.reads`: a pass through the token head, no attention


def rollout_grid(forward: ForwardPass) -> torch.Tensor:
    """Attention rollout (`rollout.attention_rollout`) read out as the head reads its tokens."""
    options, layout = forward.options, forward.batch.layout
    joint_bnn = attention_rollout(
        forward.attn_per_layer,
        head_fusion=options.head_fusion,
        discard_ratio=options.discard_ratio,
        start_layer=options.start_layer,
        num_protected_tokens=1 if layout.has_class_token else 0,
    )
    return read_out_tokens(joint_bnn, layout, forward.row_weights_bn)


def relevance_grid(forward: ForwardPass) -> torch.Tensor:
    """Gradient-weighted relevance (`relevance.gradient_relevance`) of the pass's score."""
    relevance_bnn = gradient_relevance(
        forward.attn_per_layer, forward.attn_grads, forward.options.start_layer
    )
    return read_out_tokens(relevance_bnn, forward.batch.layout, forward.row_weights_bn)


def evidence_grid(forward: ForwardPass) -> torch.Tensor:
    """The head applied to each final patch token (CAM for ViTs): its defect-vs-good evidence
    (`target_scores` "contrast")."""
    vit, layout = forward.batch.vit, forward.batch.layout
    patches_bnd = forward.final_tokens_bnd[:, layout.num_prefix_tokens :].float()
    with torch.no_grad():
        logits_bnk = vit.head(vit.fc_norm(patches_bnd)).float()
    evidence_bn = target_scores(logits_bnk.flatten(0, 1), "contrast", forward.options.good_class)
    return evidence_bn.reshape(-1, *layout.grid_hw)


def tokens_grid(forward: ForwardPass) -> torch.Tensor:
    """The token head's defect probability per patch."""
    tokens_bn = forward.token_logits_bn.float().sigmoid()
    return tokens_bn.reshape(-1, *forward.batch.layout.grid_hw)  # -1: an export keeps B dynamic


@dataclass(frozen=True)
class MapKind:
    """A map kind: its function (a forward pass -> the map on the patch grid) and its needs."""

    grid: Callable[[ForwardPass], torch.Tensor]
    reads: str = (
        "predicted"  # the pass: the score it explains ("predicted", "contrast"), or TOKEN_HEAD
    )
    gradients: bool = False  # needs d(score)/d(attention) of that pass
    head_rows: bool = False  # reads the tokens' rows as the head does (a pooled head: a gradient)

    @property
    def needs_token_head(self) -> bool:
        return self.reads == TOKEN_HEAD


# passes run in the order of their first kind here; a batch's predictions come from the first
MAP_KINDS: dict[str, MapKind] = {
    "rollout": MapKind(rollout_grid, head_rows=True),
    "relevance": MapKind(relevance_grid, gradients=True, head_rows=True),
    "contrast": MapKind(relevance_grid, reads="contrast", gradients=True, head_rows=True),
    "evidence": MapKind(evidence_grid),
    "tokens": MapKind(tokens_grid, reads=TOKEN_HEAD),
}


def check_kinds(kinds: Sequence[str], key: str) -> list[str]:
    """`kinds` as a list, checked: non-empty, known, no repeats; errors name the config `key`."""
    kinds = [str(kind) for kind in ([kinds] if isinstance(kinds, str) else kinds)]
    unknown = [kind for kind in kinds if kind not in MAP_KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise ConfigError(
            f"{key}={kinds} is not valid: list one or more distinct map kinds of {list(MAP_KINDS)}."
        )
    return kinds


def has_token_head(model: nn.Module) -> bool:
    """Whether `model` was trained with the mask loss (it has a per-token defect head)."""
    return getattr(model, "token_head", None) is not None


def kinds_for(model: nn.Module, kinds: Sequence[str] | None) -> list[str]:
    """The kinds to draw for `model`: `kinds` (None: every kind it can make), and with a token
    head always its own map (the mask loss's: watch it become right)."""
    if kinds is None:
        return [
            k for k, spec in MAP_KINDS.items() if has_token_head(model) or not spec.needs_token_head
        ]
    kinds = list(kinds)
    if has_token_head(model):
        kinds += [k for k, spec in MAP_KINDS.items() if spec.needs_token_head and k not in kinds]
    return kinds


def open_pass(
    batch: MapBatch,
    reads: str,
    specs: Sequence[MapKind],
    options: MapOptions,
    targets: TargetSpec = None,
) -> AbstractContextManager[ForwardPass]:
    """The forward pass that `specs` (kinds reading the same pass) need; `targets` overrides the
    score a captured pass explains (default: `reads`)."""
    if reads == TOKEN_HEAD:
        return token_pass(batch, options)
    return captured_pass(
        batch,
        reads if targets is None else targets,
        options,
        gradients=any(spec.gradients for spec in specs),
        head_rows=any(spec.head_rows for spec in specs),
    )


def passes(kinds: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """(the pass, its kinds) for `kinds`, in `MAP_KINDS` order."""
    by_pass: dict[str, list[str]] = {}
    for kind, spec in MAP_KINDS.items():
        if kind in kinds:
            by_pass.setdefault(spec.reads, []).append(kind)
    yield from by_pass.items()


@dataclass
class Explanation:
    """Maps of each kind [B, H, W] and the predictions of the same forward pass, on the CPU."""

    maps: dict[str, torch.Tensor]
    grids: dict[str, torch.Tensor]  # the maps on the patch grid [B, h, w]
    probs: torch.Tensor  # [B, K]
    preds: torch.Tensor  # [B]


def explain_images(
    model: nn.Module,
    images_bchw: torch.Tensor,
    kinds: Sequence[str],
    good_class: int,
    head_fusion: str = HeadFusion.MEAN,
    discard_ratio: float = 0.0,
) -> Explanation:
    """Maps of `kinds` for images as the model takes them (a ViTClassifier: [0, 255], unnormalised).

    The ViT is located and its token layout derived once; kinds reading the same pass share one
    forward pass ("rollout", "relevance", "evidence"); "contrast" takes its own backward pass;
    "tokens" needs a model trained with `model.mask_loss.weight > 0`. Predictions come from the
    first pass.
    """
    kinds = check_kinds(kinds, "kinds")
    batch = locate(model, images_bchw)
    options = MapOptions(head_fusion, discard_ratio, good_class=good_class)
    grids: dict[str, torch.Tensor] = {}
    first: ForwardPass | None = None
    for reads, group in passes(kinds):
        specs = [MAP_KINDS[kind] for kind in group]
        with open_pass(batch, reads, specs, options) as forward:
            for kind, spec in zip(group, specs, strict=True):
                grids[kind] = spec.grid(forward).detach()
        first = forward if first is None else first
    layout = batch.layout
    return Explanation(
        maps={k: upsample_maps(grids[k], batch.image_hw, layout.geometry).cpu() for k in kinds},
        grids={kind: grids[kind].cpu() for kind in kinds},
        probs=probabilities(first.logits_bk).cpu(),
        preds=first.logits_bk.argmax(dim=-1).cpu(),
    )


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
    """Maps of attention kinds from ONE captured pass explaining `targets`, and its predictions.

    Args:
        model: a timm ViT, or a module wrapping one whose forward returns logits [B, K].
        images_bchw: the batch, as the model takes it (normalised).
        kinds: kinds of `MAP_KINDS` that read a captured pass, e.g. "rollout", "relevance",
            "evidence" (their `reads` is replaced by `targets`).
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
    captured = [k for k, spec in MAP_KINDS.items() if not spec.needs_token_head]
    unknown = sorted(set(kinds) - set(captured))
    if unknown:
        raise ConfigError(f"unknown map kinds {unknown}; choose from {captured}")
    batch = locate(model, images_bchw)
    options = MapOptions(head_fusion, discard_ratio, start_layer, good_class)
    specs = [MAP_KINDS[kind] for kind in kinds]
    targets = "predicted" if targets is None else targets
    out: dict[str, torch.Tensor] = {}
    with open_pass(batch, "predicted", specs, options, targets) as forward:
        grids = {kind: spec.grid(forward).detach() for kind, spec in zip(kinds, specs, strict=True)}
    logits_bk = forward.logits_bk
    for kind, grid_bhw in grids.items():
        out[f"{kind}_grid"] = grid_bhw
        out[kind] = upsample_maps(grid_bhw, batch.image_hw, batch.layout.geometry)
    if "relevance" in kinds:
        classes_b = target_classes(logits_bk, targets)
        out["relevance_targets"] = (
            classes_b
            if classes_b is not None
            else torch.full_like(logits_bk[:, 0], -1, dtype=torch.long)
        )
    out["logits"] = logits_bk
    out["probs"] = probabilities(logits_bk)
    out["preds"] = logits_bk.argmax(dim=-1)
    return out

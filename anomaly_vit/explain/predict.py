"""A trained `ViTClassifier`'s maps, predictions and per-image scores (callback and command share it).

Map kinds a user picks (`kinds`, the `MAP_KINDS` registry both read):
- "rollout": attention rollout, class-agnostic (how input patches flow to the token the head reads);
- "relevance": gradient-weighted relevance of the predicted class (Chefer et al.);
- "contrast": gradient-weighted relevance of the defect-vs-good evidence (log p(defect) - log p(good));
- "evidence": the class head applied to each final token, its defect-vs-good logit (CAM for ViTs;
  what a max-pooled head reads);
- "tokens": the mask loss's per-token defect probability (models trained with the mask loss).
Maps are drawn at the tokens' receptive-field centres (`model.token_geometry`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.layers import to_2tuple
from torch import nn

from anomaly_vit.checkpointing.load import load_checkpoint
from anomaly_vit.errors import ConfigError
from anomaly_vit.explain.capture import find_vision_transformer
from anomaly_vit.explain.maps import attention_maps
from anomaly_vit.explain.readout import token_layout, upsample_maps
from anomaly_vit.explain.rollout import HeadFusion
from anomaly_vit.explain.scores import score_maps


@dataclass(frozen=True)
class MapKind:
    """A map kind: the map `attention_maps` computes and what its relevance explains."""

    method: str  # an `explain.maps.attention_maps` kind (`MAP_METHODS`), or "tokens"
    targets: str  # "predicted" (the arg-max class), "contrast" (defect vs good) or "tokens"


# kinds sharing `targets` come from one forward pass, in this order
MAP_KINDS: dict[str, MapKind] = {
    "rollout": MapKind("rollout", "predicted"),
    "relevance": MapKind("relevance", "predicted"),
    "contrast": MapKind("relevance", "contrast"),
    # the head on each final token (needs no gradient; shares the "predicted" pass)
    "evidence": MapKind("evidence", "predicted"),
    # the mask loss's per-token defect probability (`token_maps`; models with a token head)
    "tokens": MapKind("tokens", "tokens"),
}
COUNT_KEYS = ("n_images", "n_images_skipped")  # bookkeeping entries of `score_maps`, not scores


def check_kinds(kinds: Sequence[str], key: str) -> list[str]:
    """`kinds` as a list, checked: non-empty, known, no repeats; errors name the config `key`."""
    kinds = [str(kind) for kind in ([kinds] if isinstance(kinds, str) else kinds)]
    unknown = [kind for kind in kinds if kind not in MAP_KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise ConfigError(
            f"{key}={kinds} is not valid: list one or more distinct map kinds of {list(MAP_KINDS)}."
        )
    return kinds


def patch_size_hw(model: nn.Module) -> tuple[int, int]:
    """Patch size of the ViT in `model` (pixels, height and width)."""
    return to_2tuple(find_vision_transformer(model).patch_embed.patch_size)


def image_size_hw(model: nn.Module) -> tuple[int, int]:
    """Input image size of the ViT in `model` (pixels, height and width)."""
    return to_2tuple(find_vision_transformer(model).patch_embed.img_size)


def resolve_tolerance_px(model: nn.Module, tolerance_px: int | None) -> int:
    """The pointing-game tolerance: as configured, or one patch side when None."""
    return int(tolerance_px) if tolerance_px is not None else max(patch_size_hw(model))


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

    Kinds with the same targets share one forward pass ("rollout", "relevance", "evidence"); "contrast"
    needs its own backward pass; "tokens" (the mask loss's per-token defect probability) needs a
    model trained with `model.mask_loss.weight > 0`. Predictions come from the first pass.
    """
    options = {"head_fusion": head_fusion, "discard_ratio": discard_ratio, "good_class": good_class}
    by_targets: dict[str, list[str]] = {}
    for kind, spec in MAP_KINDS.items():
        if kind in kinds:
            by_targets.setdefault(spec.targets, []).append(kind)
    maps: dict[str, torch.Tensor] = {}
    grids: dict[str, torch.Tensor] = {}
    outputs = []
    for targets, group in by_targets.items():
        methods = tuple(MAP_KINDS[kind].method for kind in group)
        if targets == "tokens":
            out = token_maps(model, images_bchw)
        else:
            out = attention_maps(model, images_bchw, kinds=methods, targets=targets, **options)
        outputs.append(out)
        for kind in group:
            method = MAP_KINDS[kind].method
            maps[kind], grids[kind] = out[method], out[f"{method}_grid"]
    first = outputs[0]
    return Explanation(
        maps={kind: maps[kind].cpu() for kind in kinds},
        grids={kind: grids[kind].cpu() for kind in kinds},
        probs=first["probs"].cpu(),
        preds=first["preds"].cpu(),
    )


def token_maps(model: nn.Module, images_bchw: torch.Tensor) -> dict[str, torch.Tensor]:
    """The token head's defect probability per patch, on the grid and upsampled to the image."""
    if getattr(model, "token_head", None) is None:
        raise ConfigError(
            "map kind 'tokens' needs a model trained with the mask loss "
            "(model.mask_loss.weight > 0); drop 'tokens' from the map kinds."
        )
    with torch.no_grad():
        logits_bk, tokens_bn = model.forward_with_tokens(images_bchw)
    image_hw = (int(images_bchw.shape[-2]), int(images_bchw.shape[-1]))
    layout = token_layout(find_vision_transformer(model), image_hw)
    grid = tokens_bn.float().sigmoid().reshape(len(tokens_bn), *layout.grid_hw)
    probs = logits_bk.float().softmax(dim=-1)
    return {
        "tokens_grid": grid,
        "tokens": upsample_maps(grid, image_hw, layout.geometry),
        "probs": probs,
        "preds": probs.argmax(dim=-1),
    }


def per_image_scores(
    maps_by_kind: Mapping[str, torch.Tensor],
    masks_bhw: torch.Tensor,
    patch_size: int | tuple[int, int],
    tolerance_px: int,
    patch_positive_share: float = 0.1,
) -> list[dict[str, float]]:
    """`score_maps` of each image alone, as {"<kind>/<score>": value}; {} for an empty mask."""
    rows: list[dict[str, float]] = []
    for index, mask_hw in enumerate(masks_bhw.bool()):
        row: dict[str, float] = {}
        if mask_hw.any():
            for kind, maps_bhw in maps_by_kind.items():
                scores = score_maps(
                    maps_bhw[index : index + 1],
                    mask_hw[None],
                    patch_size,
                    tolerance_px=tolerance_px,
                    patch_positive_share=patch_positive_share,
                )
                row |= {f"{kind}/{name}": v for name, v in scores.items() if name not in COUNT_KEYS}
        rows.append(row)
    return rows


def finite_or_blank(value: float) -> float | str:
    """A value for a CSV cell: NaN becomes an empty cell."""
    return "" if isinstance(value, float) and math.isnan(value) else value


def load_classifier(ckpt_path: str | Path, trust_pickle: bool = False, key: str = "ckpt_path"):
    """A `ViTClassifier` from a checkpoint of anomaly_vit.train, on the CPU in eval mode.

    Loads weights only (unless `trust_pickle`) through `ViTClassifier.from_checkpoint`, like
    `anomaly_vit.eval`. Returns (model, the checkpoint's "anomaly_vit" info).
    """
    from anomaly_vit.model.module import ViTClassifier

    checkpoint = load_checkpoint(ckpt_path, key=key, trust_pickle=trust_pickle)
    model = ViTClassifier.from_checkpoint(ckpt_path, key=key, checkpoint=checkpoint)
    return model.eval(), checkpoint.get("anomaly_vit", {})

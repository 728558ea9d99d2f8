"""A trained `ViTClassifier`'s maps, predictions and per-image scores (callback and command share it).

Map kinds a user picks (`kinds`):
- "rollout": attention rollout, class-agnostic (how input patches flow to the token the head reads);
- "relevance": gradient-weighted relevance of the predicted class (Chefer et al.);
- "contrast": gradient-weighted relevance of the defect-vs-good evidence (log p(defect) - log p(good)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from anomaly_vit.checkpointing.load import load_checkpoint
from anomaly_vit.explain.capture import find_vision_transformer
from anomaly_vit.explain.maps import attention_maps
from anomaly_vit.explain.scores import score_maps

MAP_KINDS = ("rollout", "relevance", "contrast")
COUNT_KEYS = ("n_images", "n_images_skipped")  # bookkeeping entries of `score_maps`, not scores


def check_kinds(kinds: Sequence[str], key: str) -> list[str]:
    """`kinds` as a list, checked: non-empty, known, no repeats; errors name the config `key`."""
    kinds = [str(kind) for kind in ([kinds] if isinstance(kinds, str) else kinds)]
    unknown = [kind for kind in kinds if kind not in MAP_KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise ValueError(
            f"{key}={kinds} is not valid: list one or more distinct map kinds of {list(MAP_KINDS)}."
        )
    return kinds


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def patch_size_hw(model: nn.Module) -> tuple[int, int]:
    """Patch size of the ViT in `model` (pixels, height and width)."""
    return _pair(find_vision_transformer(model).patch_embed.patch_size)


def image_size_hw(model: nn.Module) -> tuple[int, int]:
    """Input image size of the ViT in `model` (pixels, height and width)."""
    return _pair(find_vision_transformer(model).patch_embed.img_size)


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
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> Explanation:
    """Maps of `kinds` for images as the model takes them (a ViTClassifier: [0, 255], unnormalised).

    One forward pass serves "rollout" and "relevance" together; "contrast" needs its own
    backward pass.
    """
    options = {"head_fusion": head_fusion, "discard_ratio": discard_ratio, "good_class": good_class}
    maps: dict[str, torch.Tensor] = {}
    grids: dict[str, torch.Tensor] = {}
    outputs = []
    shared = tuple(kind for kind in ("rollout", "relevance") if kind in kinds)
    if shared:
        out = attention_maps(model, images_bchw, kinds=shared, targets="predicted", **options)
        outputs.append(out)
        for kind in shared:
            maps[kind], grids[kind] = out[kind], out[f"{kind}_grid"]
    if "contrast" in kinds:
        out = attention_maps(
            model, images_bchw, kinds=("relevance",), targets="contrast", **options
        )
        outputs.append(out)
        maps["contrast"], grids["contrast"] = out["relevance"], out["relevance_grid"]
    first = outputs[0]
    return Explanation(
        maps={kind: maps[kind].cpu() for kind in kinds},
        grids={kind: grids[kind].cpu() for kind in kinds},
        probs=first["probs"].cpu(),
        preds=first["preds"].cpu(),
    )


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

    Loads weights only (unless `trust_pickle`) and builds the net without pretrained weights,
    like `anomaly_vit.eval`. Returns (model, the checkpoint's "anomaly_vit" info).
    """
    from anomaly_vit.model.module import ViTClassifier
    from anomaly_vit.stored_config import checked_model_hparams

    checkpoint = load_checkpoint(ckpt_path, key=key, trust_pickle=trust_pickle)
    hparams = checkpoint.get("hyper_parameters")
    if not hparams or "net" not in hparams or "classes" not in hparams:
        raise ValueError(
            f"{key}={ckpt_path} carries no model hyper-parameters; it was not written by "
            "anomaly_vit.train."
        )
    model = ViTClassifier(**checked_model_hparams(hparams, f"{key}={ckpt_path}"))
    model.load_state_dict(checkpoint["state_dict"])
    model.on_load_checkpoint(checkpoint)
    model.eval()
    return model, checkpoint.get("anomaly_vit", {})

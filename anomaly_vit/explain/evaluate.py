"""Localisation scores of a model's maps on EVERY defective image with a mask of a split.

`SplitScorer` (config: `explain_scores` at the end of training, `callbacks.rollouts.score_split`
during it) explains the split's defective images with a non-empty mask in batches and scores each
map kind and the random / centre baselines per image (`explain.scores.image_scores`). The block
it returns (summary.json "explain"):

    {"n_scored": N, "n_misclassified": M, "maps": {kind: {score: mean, "aupro": ...}}, "baselines":
     {"random": {...}, "centre": {...}}, "kinds", "split", "tolerance_px", "seconds",
     "cpu_seconds"}

Each kind's "pointing_misclassified" is its pointing on the M images the model gets wrong (defect
score below the stored threshold, or a wrong defect class): NaN (null in JSON) when M = 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from anomaly_vit.data.split import SPLITS
from anomaly_vit.errors import enum_value
from anomaly_vit.explain.predict import (
    MAP_KINDS,
    check_kinds,
    explain_images,
    patch_size_hw,
    resolve_tolerance_px,
)
from anomaly_vit.explain.rollout import HeadFusion
from anomaly_vit.explain.scores import (
    CENTRE_BASELINE,
    RANDOM_BASELINE,
    SCORE_NAMES,
    aupro,
    centre_prior_maps,
    dilate_masks,
    image_scores,
    random_maps,
)

BASELINES = {RANDOM_BASELINE: "random", CENTRE_BASELINE: "centre"}  # summary names
KEY = "explain_scores"


def usable_kinds(model: nn.Module, kinds: Sequence[str] | None) -> list[str]:
    """`kinds` (None: every kind of MAP_KINDS), less token-head kinds when the model has none."""
    kinds = list(MAP_KINDS) if kinds is None else list(kinds)
    has_tokens = getattr(model, "token_head", None) is not None
    return [kind for kind in kinds if has_tokens or MAP_KINDS[kind].method != "tokens"]


def defect_scores(
    model: nn.Module, images_bchw: torch.Tensor, probs_bk: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(defect score [B] as the model's decision reads it, class probabilities [B, K]).
    `probs_bk`: the class probabilities of these images, when known (saves a forward pass for a
    model without a token head)."""
    if probs_bk is not None and getattr(model, "token_head", None) is None:
        probs_bk = probs_bk.float()
        return 1.0 - probs_bk[:, model.good_index], probs_bk  # `defect_score` of the head alone
    with torch.no_grad():
        logits_bk, tokens_bn = model.forward_with_tokens(images_bchw)
        scores_b = model.defect_score(logits_bk, tokens_bn)
    return scores_b, logits_bk.float().softmax(dim=-1)


def misclassified(
    model: nn.Module,
    images_bchw: torch.Tensor,
    labels_b: torch.Tensor,
    probs_bk: torch.Tensor | None = None,
    scores_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which defective images the model gets wrong [B] (bool): defect score (as the model's
    decision reads it) below its stored threshold, or a wrong defect class (label -1: unknown).
    `probs_bk`, `scores_b`: the images' class probabilities and defect scores, when known."""
    if scores_b is None or probs_bk is None:
        scores_b, probs_bk = defect_scores(model, images_bchw, probs_bk)
    preds_b = probs_bk.argmax(dim=-1)
    labels_b = labels_b.to(preds_b.device)
    wrong_class_b = (labels_b >= 0) & (preds_b != labels_b) & (preds_b != model.good_index)
    threshold = model.defect_threshold.to(scores_b.device)
    return ((scores_b < threshold) | wrong_class_b).cpu()


def summarise_scores(
    values: Mapping[str, Mapping[str, torch.Tensor]],
    wrong_n: torch.Tensor,
    maps_masks: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """The block from per-image scores {kind: {score: [N]}} and the misclassified flags [N];
    with `maps_masks` {kind: (maps [N, H, W], masks [N, H, W])} each kind also gets its
    "aupro" over all N images (`scores.aupro`: a score of the set, not a mean)."""

    def means(kind: str, per_image: Mapping[str, torch.Tensor]) -> dict[str, float]:
        out = {name: float(v.nanmean()) if v.numel() else math.nan for name, v in per_image.items()}
        pointing = per_image["pointing"][wrong_n]
        out["pointing_misclassified"] = float(pointing.nanmean()) if pointing.numel() else math.nan
        if maps_masks is not None:
            maps, masks = maps_masks.get(kind, (None, None))
            out["aupro"] = aupro(maps, masks) if maps is not None and len(maps) else math.nan
        return out

    return {
        "n_scored": int(wrong_n.numel()),
        "n_misclassified": int(wrong_n.sum()),
        "maps": {k: means(k, v) for k, v in values.items() if k not in BASELINES},
        "baselines": {BASELINES[k]: means(k, v) for k, v in values.items() if k in BASELINES},
    }


def tensorboard_metrics(block: Mapping[str, Any], prefix: str = "explain") -> dict[str, float]:
    """The block's finite scores as flat scalars `<prefix>/<kind>/<score>` (baselines:
    `<prefix>/baseline_random/...`) and `<prefix>/n_scored`, `<prefix>/n_misclassified`."""
    metrics = {f"{prefix}/{key}": float(block[key]) for key in ("n_scored", "n_misclassified")}
    named = {**block["maps"], **{f"baseline_{k}": v for k, v in block["baselines"].items()}}
    for kind, scores in named.items():
        for name, value in scores.items():
            if math.isfinite(value):
                metrics[f"{prefix}/{kind}/{name}"] = value
    return metrics


class SplitScorer:
    """Scores the maps of `kinds` on every defective image with a mask of a datamodule's split."""

    def __init__(
        self,
        split: str = "test",
        kinds: Sequence[str] | None = None,
        batch_size: int = 32,
        tolerance_px: int | None = None,
        patch_positive_share: float = 0.1,
        head_fusion: str = HeadFusion.MEAN,
        discard_ratio: float = 0.0,
        device: str | None = None,
        seed: int = 0,
        key: str = KEY,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"{key}.batch_size must be >= 1, got {batch_size}.")
        if split not in SPLITS:
            raise ValueError(f"{key}: split {split!r} is not one of {list(SPLITS)}.")
        self.split = str(split)
        self.kinds = None if kinds is None else check_kinds(kinds, f"{key}.kinds")
        self.batch_size = int(batch_size)
        self.tolerance_px = None if tolerance_px is None else int(tolerance_px)
        self.patch_positive_share = float(patch_positive_share)
        self.head_fusion = enum_value(HeadFusion, head_fusion, f"{key}.head_fusion")
        if not 0.0 <= float(discard_ratio) < 1.0:
            raise ValueError(f"{key}.discard_ratio must be in [0, 1), got {discard_ratio}.")
        self.discard_ratio = float(discard_ratio)
        self.device = device
        self.seed = int(seed)

    def __call__(self, model: nn.Module, datamodule: Any) -> dict[str, Any] | None:
        """The block for the datamodule's real images of `split`; None without a cached split."""
        pool = datamodule.probe_pool(self.split, synthetic=False)
        if pool is None:
            return None
        rows = torch.tensor(pool.rows, dtype=torch.long)
        dataset = pool.dataset
        if dataset.masks_nhw is not None:
            masks_nhw = dataset.masks_nhw[rows]
        else:  # masks decoded through the source (an empty pool has none)
            size_hw = tuple(dataset.images_nchw.shape[-2:])
            masks = [pool.mask(j) for j in range(len(pool))]
            masks_nhw = torch.stack(masks) if masks else torch.zeros((0, *size_hw), dtype=bool)
        return self.score(model, dataset.images_nchw[rows], dataset.labels[rows], masks_nhw)

    def score(
        self,
        model: nn.Module,
        images_nchw: torch.Tensor,
        labels_n: torch.Tensor,
        masks_nhw: torch.Tensor,
    ) -> dict[str, Any]:
        """The block for uint8 images [N, 3, H, W] with labels [N] and masks [N, H, W]."""
        start, cpu_start = time.perf_counter(), time.process_time()
        if self.device == "auto":
            model.to("cuda" if torch.cuda.is_available() else "cpu")
        elif self.device:
            model.to(self.device)
        device = next(model.parameters()).device
        kinds = usable_kinds(model, self.kinds)
        tolerance_px = resolve_tolerance_px(model, self.tolerance_px)
        scored = (labels_n != model.good_index) & masks_nhw.flatten(1).any(dim=1)
        index = scored.nonzero().flatten()
        values: dict[str, dict[str, list[torch.Tensor]]] = {}
        kept_maps: dict[str, list[torch.Tensor]] = {}  # for AUPRO, a score of the whole set
        wrong: list[torch.Tensor] = []
        was_training = model.training
        model.eval()
        try:
            for first in range(0, len(index), self.batch_size):
                rows = index[first : first + self.batch_size]
                images = images_nchw[rows].to(device)
                explanation = explain_images(
                    model,
                    images,
                    kinds,
                    good_class=model.good_index,
                    head_fusion=self.head_fusion,
                    discard_ratio=self.discard_ratio,
                )
                wrong.append(misclassified(model, images, labels_n[rows], explanation.probs))
                size_hw = tuple(images.shape[-2:])
                maps = explanation.maps | {
                    RANDOM_BASELINE: random_maps(len(rows), size_hw, self.seed + first),
                    CENTRE_BASELINE: centre_prior_maps(len(rows), size_hw),
                }
                masks = masks_nhw[rows]
                dilated = dilate_masks(masks, tolerance_px)  # once for every kind
                for kind, maps_bhw in maps.items():
                    kept_maps.setdefault(kind, []).append(maps_bhw.detach().float().cpu())
                    per_image = image_scores(
                        maps_bhw,
                        masks,
                        patch_size_hw(model),
                        tolerance_px,
                        self.patch_positive_share,
                        dilated_bhw=dilated,
                    )
                    for name, value in per_image.items():
                        values.setdefault(kind, {}).setdefault(name, []).append(value)
        finally:
            model.train(was_training)
        if not wrong:  # nothing to score: every score NaN
            empty = {name: [torch.empty(0)] for name in SCORE_NAMES}
            values = {kind: dict(empty) for kind in [*kinds, *BASELINES]}
            wrong = [torch.empty(0, dtype=torch.bool)]
        scored_masks = masks_nhw[index].bool().cpu()
        block = summarise_scores(
            {k: {n: torch.cat(v) for n, v in per.items()} for k, per in values.items()},
            torch.cat(wrong),
            {kind: (torch.cat(maps), scored_masks) for kind, maps in kept_maps.items()},
        )
        block |= {"kinds": kinds, "split": self.split, "tolerance_px": tolerance_px}
        block["seconds"] = time.perf_counter() - start
        block["cpu_seconds"] = (
            time.process_time() - cpu_start
        )  # all threads, steadier on a busy host
        return block

"""ONE scorer of maps against defect masks: predict -> score -> aggregate.

`MapScorer` draws the maps of the kinds a model gets (`kinds.kinds_for`, `kinds.explain_images`),
scores each image's maps and the random / centre baselines against its mask
(`scores.image_scores`, `score_images`) and a `ScoreTable` gathers the per-image scores over
batches and aggregates them. Its users:
- the training callback (`callbacks.maps.MapDumper`): the fixed probes every N epochs, and with
  `score_split` a whole split (`SplitScorer`);
- the end of training (`explain_scores` in conf/train.yaml: a `SplitScorer` of the test split);
- `python -m anomaly_vit.explain` (`explain.command`): per-image rows and the same block.

`SplitScorer` scores EVERY defective image with a non-empty mask of a datamodule's split, in
batches. The block it returns (summary.json "explain"; the explain command's too):

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
from anomaly_vit.errors import ConfigError, enum_value
from anomaly_vit.maps.forward import patch_size_hw
from anomaly_vit.maps.kinds import Explanation, check_kinds, explain_images, kinds_for
from anomaly_vit.maps.rollout import HeadFusion
from anomaly_vit.maps.scores import (
    CENTRE_BASELINE,
    RANDOM_BASELINE,
    SCORE_NAMES,
    aupro,
    dilate_masks,
    image_scores,
    with_baselines,
)

BASELINES = {RANDOM_BASELINE: "random", CENTRE_BASELINE: "centre"}  # summary names
KEY = "explain_scores"
PerImage = dict[str, dict[str, torch.Tensor]]  # {kind: {score: [B]}}, baselines included


def resolve_tolerance_px(model: nn.Module, tolerance_px: int | None) -> int:
    """The pointing-game tolerance: as configured, or one patch side when None."""
    return int(tolerance_px) if tolerance_px is not None else max(patch_size_hw(model))


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


def means(per_image: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The mean of each per-image score, NaNs left out (NaN when no image has one)."""
    return {name: float(v.nanmean()) if v.numel() else math.nan for name, v in per_image.items()}


def summarise_scores(
    values: Mapping[str, Mapping[str, torch.Tensor]],
    wrong_n: torch.Tensor,
    maps_masks: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """The block from per-image scores {kind: {score: [N]}} and the misclassified flags [N];
    with `maps_masks` {kind: (maps [N, H, W], masks [N, H, W])} each kind (and baseline) also
    gets "aupro" over all N images (`scores.aupro`: a score of the set, not a mean)."""

    def with_misclassified(kind: str, per_image: Mapping[str, torch.Tensor]) -> dict[str, float]:
        out = means(per_image) | {
            "pointing_misclassified": means({"p": per_image["pointing"][wrong_n]})["p"]
        }
        if maps_masks is not None:
            maps, masks = maps_masks.get(kind, (None, None))
            out["aupro"] = aupro(maps, masks) if maps is not None and len(maps) else math.nan
        return out

    return {
        "n_scored": int(wrong_n.numel()),
        "n_misclassified": int(wrong_n.sum()),
        "maps": {k: with_misclassified(k, v) for k, v in values.items() if k not in BASELINES},
        "baselines": {
            BASELINES[k]: with_misclassified(k, v) for k, v in values.items() if k in BASELINES
        },
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


class ScoreTable:
    """Per-image scores of the kinds and baselines gathered over batches, which images the model
    gets wrong, and their aggregate."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = [*kinds, *BASELINES]
        self._values: dict[str, dict[str, list[torch.Tensor]]] = {
            kind: {name: [torch.empty(0)] for name in SCORE_NAMES} for kind in self.kinds
        }
        self._wrong: list[torch.Tensor] = [torch.empty(0, dtype=torch.bool)]
        self._maps: dict[str, list[torch.Tensor]] = {}  # for AUPRO, when `add` is given maps
        self._masks: list[torch.Tensor] = []

    def add(
        self,
        per_image: PerImage,
        wrong_b: torch.Tensor | None,
        keep_b: torch.Tensor,
        maps: Mapping[str, torch.Tensor] | None = None,
        masks_bhw: torch.Tensor | None = None,
    ) -> None:
        """Keep the images `keep_b` [B] (bool) of a batch; `wrong_b` [B]: misclassified (None:
        not known, counted as right). With the scored `maps` (baselines included,
        `MapScorer.with_baselines`) and `masks_bhw`, the block gets each kind's AUPRO."""
        keep_b = keep_b.bool().cpu()
        for kind in self.kinds:
            for name in SCORE_NAMES:
                self._values[kind][name].append(per_image[kind][name].cpu()[keep_b])
        wrong_b = torch.zeros_like(keep_b) if wrong_b is None else wrong_b.bool().cpu()
        self._wrong.append(wrong_b[keep_b])
        if maps is not None and masks_bhw is not None:
            for kind in self.kinds:
                self._maps.setdefault(kind, []).append(maps[kind].detach().float().cpu()[keep_b])
            self._masks.append(masks_bhw.bool().cpu()[keep_b])

    @property
    def n_images(self) -> int:
        return sum(len(w) for w in self._wrong)

    def values(self) -> PerImage:
        return {
            kind: {n: torch.cat(v) for n, v in per.items()} for kind, per in self._values.items()
        }

    def means(self) -> dict[str, dict[str, float]]:
        """{kind or baseline name: {score: mean over the images kept}}."""
        return {kind: means(per_image) for kind, per_image in self.values().items()}

    def block(self) -> dict[str, Any]:
        """The summary block (`summarise_scores`) of every image kept (with AUPRO when `add`
        was given the maps)."""
        maps_masks = None
        if self._masks:
            masks = torch.cat(self._masks)
            maps_masks = {kind: (torch.cat(m), masks) for kind, m in self._maps.items()}
        return summarise_scores(self.values(), torch.cat(self._wrong), maps_masks)


class MapScorer:
    """Predict -> score -> aggregate: the maps of a model's kinds, scored per image against masks
    beside the random and centre baselines (errors name the config `key`; "": top-level keys)."""

    def __init__(
        self,
        kinds: Sequence[str] | None = None,
        tolerance_px: int | None = None,
        patch_positive_share: float = 0.1,
        head_fusion: str = HeadFusion.MEAN,
        discard_ratio: float = 0.0,
        seed: int = 0,
        key: str = KEY,
    ) -> None:
        def name(field: str) -> str:  # the config key of a setting
            return f"{key}.{field}" if key else field

        self.kinds = None if kinds is None else check_kinds(kinds, name("kinds"))
        if tolerance_px is not None and int(tolerance_px) < 0:
            raise ConfigError(
                f"{name('tolerance_px')} must be >= 0 pixels (or null for one patch), "
                f"got {tolerance_px}."
            )
        self.tolerance_px = None if tolerance_px is None else int(tolerance_px)
        self.patch_positive_share = float(patch_positive_share)
        self.head_fusion = enum_value(HeadFusion, head_fusion, name("head_fusion"))
        if not 0.0 <= float(discard_ratio) < 1.0:
            raise ConfigError(f"{name('discard_ratio')} must be in [0, 1), got {discard_ratio}.")
        self.discard_ratio = float(discard_ratio)
        self.seed = int(seed)
        self.key = key

    def kinds_for(self, model: nn.Module) -> list[str]:
        """The kinds drawn for `model` (`kinds.kinds_for`)."""
        return kinds_for(model, self.kinds)

    def predict(self, model: nn.Module, images_bchw: torch.Tensor) -> Explanation:
        """The maps of the model's kinds and its predictions (`kinds.explain_images`)."""
        return explain_images(
            model,
            images_bchw,
            self.kinds_for(model),
            good_class=model.good_index,
            head_fusion=self.head_fusion,
            discard_ratio=self.discard_ratio,
        )

    @staticmethod
    def with_baselines(
        maps_by_kind: Mapping[str, torch.Tensor], masks_bhw: torch.Tensor, seed: int
    ) -> dict[str, torch.Tensor]:
        """The maps on the CPU plus the random (from `seed`) and centre baseline maps."""
        maps = {k: m.cpu() for k, m in maps_by_kind.items()}
        return with_baselines(maps, masks_bhw.bool().cpu(), seed)

    def score_images(
        self,
        model: nn.Module,
        maps_by_kind: Mapping[str, torch.Tensor],
        masks_bhw: torch.Tensor,
        seed: int,
    ) -> PerImage:
        """Every score of each image's maps and of the baselines (random maps from `seed`;
        maps that already hold them, `with_baselines`, are scored as they are)."""
        patch_hw = patch_size_hw(model)
        tolerance_px = self.tolerance_px if self.tolerance_px is not None else max(patch_hw)
        masks_bhw = masks_bhw.bool().cpu()
        dilated_bhw = dilate_masks(masks_bhw, tolerance_px)  # once for every kind
        if RANDOM_BASELINE in maps_by_kind:
            maps = {k: m.cpu() for k, m in maps_by_kind.items()}
        else:
            maps = self.with_baselines(maps_by_kind, masks_bhw, seed)
        return {
            kind: image_scores(
                maps_bhw,
                masks_bhw,
                patch_hw,
                tolerance_px,
                self.patch_positive_share,
                dilated_bhw=dilated_bhw,
            )
            for kind, maps_bhw in maps.items()
        }


class SplitScorer(MapScorer):
    """Scores the maps on every defective image with a mask of a datamodule's split, in batches."""

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
            raise ConfigError(f"{key}.batch_size must be >= 1, got {batch_size}.")
        if split not in SPLITS:
            raise ConfigError(f"{key}: split {split!r} is not one of {list(SPLITS)}.")
        super().__init__(
            kinds, tolerance_px, patch_positive_share, head_fusion, discard_ratio, seed, key
        )
        self.split = str(split)
        self.batch_size = int(batch_size)
        self.device = device

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
        kinds = self.kinds_for(model)
        scored = (labels_n != model.good_index) & masks_nhw.flatten(1).any(dim=1)
        index = scored.nonzero().flatten()
        table = ScoreTable(kinds)
        was_training = model.training
        model.eval()
        try:
            for first in range(0, len(index), self.batch_size):
                rows = index[first : first + self.batch_size]
                images = images_nchw[rows].to(device)
                explanation = self.predict(model, images)
                wrong = misclassified(model, images, labels_n[rows], explanation.probs)
                maps = self.with_baselines(explanation.maps, masks_nhw[rows], self.seed + first)
                per_image = self.score_images(model, maps, masks_nhw[rows], self.seed + first)
                keep = torch.ones(len(rows), dtype=torch.bool)
                table.add(per_image, wrong, keep, maps, masks_nhw[rows])
        finally:
            model.train(was_training)
        block = table.block()
        tolerance_px = resolve_tolerance_px(model, self.tolerance_px)
        block |= {"kinds": kinds, "split": self.split, "tolerance_px": tolerance_px}
        block["seconds"] = time.perf_counter() - start
        # all threads, steadier on a busy host
        block["cpu_seconds"] = time.process_time() - cpu_start
        return block

"""The explain command: overlays, predictions and localisation scores of a checkpoint on new images.

`python -m anomaly_vit.explain ckpt_path=<run>/checkpoints/best.ckpt input=<folder|manifest.csv>`
writes into its run dir (outputs/runs/<time>_explain/):

- `overlays/<name>.png`: the image with its true class (when known), prediction and probability,
  then one overlay per map kind, with the mask contour when a mask exists;
- `predictions.csv`: one row per image: path, true label, predicted class and its probability,
  defect score (as the model decides: 1 - p(good), or with the token head per
  `model.mask_loss.decision`), `is_defect` at the run's threshold policy (`threshold_policy=`,
  or a number `threshold=`; docs/deploy.md), and where a mask
  exists the scores `<kind>/<score>` (pointing, energy, pixel_auroc, ...); empty cells elsewhere;
- `summary.json`: counts, accuracies where labels are known, the mean scores of every map
  kind and of the random / centre baselines over the images with a defect mask ("scores"), and
  the same "explain" block as a training run's summary.json (`maps.scorer`: n_scored,
  n_misclassified, maps, baselines, pointing on the misclassified images).

Maps and scores come from the ONE scorer of `anomaly_vit.maps` (`maps.scorer.MapScorer`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from anomaly_vit.data.bad_images import OnBadImage
from anomaly_vit.data.resize import ResizeMode
from anomaly_vit.errors import ConfigError, DataError, enum_value, task_wrapper
from anomaly_vit.explain.checkpoint import load_classifier
from anomaly_vit.explain.inputs import (
    InputImage,
    find_inputs,
    load_input,
    model_labels,
    training_resize,
)
from anomaly_vit.maps.forward import image_size_hw
from anomaly_vit.maps.kinds import Explanation, check_kinds
from anomaly_vit.maps.scorer import (
    MapScorer,
    ScoreTable,
    defect_scores,
    misclassified,
    resolve_tolerance_px,
)
from anomaly_vit.maps.scores import PEAK_LABEL, PEAK_PIXELS, SCORE_NAMES, peak_share
from anomaly_vit.model.calibration import checkpoint_threshold
from anomaly_vit.rundir import PREDICTIONS_CSV, SUMMARY_JSON, write_dict_rows, write_json
from anomaly_vit.viz.overlays import probe_grid_figure, save_figure

log = logging.getLogger(__name__)

BASE_COLUMNS = (
    "path",
    "overlay",
    "true_label",
    "predicted",
    "probability",
    "defect_score",
    "is_defect",
    "has_mask",
)
USAGE = (
    "python -m anomaly_vit.explain ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt "
    "input=<image folder, manifest CSV or image>"
)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _load_batch(
    items: list[InputImage],
    size_hw: tuple[int, int],
    resize: ResizeMode,
    on_bad_image: str,
    skipped: list[dict],
) -> tuple[list[InputImage], torch.Tensor, torch.Tensor, list[bool]]:
    """Decode a batch: (kept items, uint8 images [B, 3, H, W], masks [B, H, W], has-mask flags)."""
    kept, images, masks, has_mask = [], [], [], []
    for item in items:
        try:
            image, mask = load_input(item, size_hw, resize)
        except ValueError as error:  # BadImageError: names the file and a fix
            if on_bad_image == OnBadImage.ERROR:
                raise
            log.warning("skipping: %s", error)
            skipped.append({"path": str(item.path), "error": str(error)})
            continue
        kept.append(item)
        images.append(torch.tensor(image).permute(2, 0, 1))
        masks.append(torch.from_numpy(mask if mask is not None else np.zeros(size_hw, dtype=bool)))
        has_mask.append(mask is not None)
    if not kept:
        return kept, torch.empty(0), torch.empty(0), has_mask
    return kept, torch.stack(images), torch.stack(masks), has_mask


def _overlay_figure(
    item: InputImage,
    index: int,
    images: torch.Tensor,
    masks: torch.Tensor,
    has_mask: bool,
    explanation: Explanation,
    classes: list[str],
    defect_score: float,
    threshold: float,
    panel_in: float,
):
    verdict = "defect" if defect_score >= threshold else "good"
    maps = {kind: maps[index : index + 1] for kind, maps in explanation.maps.items()}
    return probe_grid_figure(
        images[index : index + 1],
        maps,
        masks=masks[index : index + 1] if has_mask else None,
        true_labels=[item.label] if item.label is not None else None,
        pred_labels=explanation.preds[index : index + 1],
        probs=explanation.probs[index : index + 1],
        class_names=classes,
        panel_in=panel_in,
        title=f"{item.name}: defect score {defect_score:.2f}, {verdict} at threshold {threshold:.2f}"
        f"\n{PEAK_LABEL}: the map's share in its top {PEAK_PIXELS:.0%} of pixels",
        panel_scores={kind: peak_share(maps_bhw).tolist() for kind, maps_bhw in maps.items()},
        panel_score_name=PEAK_LABEL,
    )


def finite_or_blank(value: float) -> float | str:
    """A value for a CSV cell: NaN becomes an empty cell."""
    return "" if isinstance(value, float) and math.isnan(value) else value


def _accuracies(rows: list[dict[str, Any]], classes: list[str], good_class: str) -> dict:
    known = [row for row in rows if row["true_label"] in classes]
    if not known:
        return {}
    return {
        "n_labelled": len(known),
        "acc": float(np.mean([row["true_label"] == row["predicted"] for row in known])),
        "defect_acc_at_threshold": float(
            np.mean([(row["true_label"] != good_class) == row["is_defect"] for row in known])
        ),
    }


@task_wrapper
def explain(cfg: DictConfig) -> dict[str, Any]:
    """Explain every image of `cfg.input` with the model of `cfg.ckpt_path` (see module doc)."""
    if not cfg.get("ckpt_path"):
        raise ConfigError(f"ckpt_path is required: {USAGE}")
    if not cfg.get("input"):
        raise ConfigError(f"input is required: {USAGE}")
    on_bad_image = enum_value(OnBadImage, cfg.on_bad_image, "on_bad_image")
    if int(cfg.batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {cfg.batch_size}.")
    scorer = MapScorer(
        check_kinds(cfg.kinds, "kinds"),
        cfg.get("tolerance_px"),
        float(cfg.patch_positive_share),
        cfg.head_fusion,
        float(cfg.discard_ratio),
        int(cfg.seed),
        key="",
    )
    model, info = load_classifier(cfg.ckpt_path, trust_pickle=bool(cfg.trust_pickle))
    model.to(_device(str(cfg.device)))
    kinds = scorer.kinds_for(model)  # a mask-guided model's own map is always shown and scored
    threshold, policy = checkpoint_threshold(
        cfg.ckpt_path, model, cfg.get("threshold_policy"), cfg.get("threshold")
    )
    model.defect_threshold.fill_(threshold)  # every decision below (and `misclassified`) uses it
    table = ScoreTable(kinds)  # the images with a defect mask
    relabel = model_labels(info, model.classes)  # a binary model: crack/ is its defect class
    items = find_inputs(cfg.input, cfg.get("masks"), model.classes, relabel)
    size_hw = image_size_hw(model)
    resize = training_resize(info)
    tolerance_px = resolve_tolerance_px(model, cfg.get("tolerance_px"))
    output_dir = Path(cfg.paths.output_dir)
    overlay_dir = output_dir / "overlays"
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    log.info("explaining %d image(s) from %s with %s", len(items), cfg.input, cfg.ckpt_path)
    for start in range(0, len(items), int(cfg.batch_size)):
        batch, images, masks, has_mask = _load_batch(
            items[start : start + int(cfg.batch_size)], size_hw, resize, on_bad_image, skipped
        )
        if not batch:
            continue
        device = next(model.parameters()).device
        explanation = scorer.predict(model, images.to(device))
        labels = [model.classes.index(i.label) if i.label in model.classes else -1 for i in batch]
        labels_b = torch.tensor(labels)
        defect_scores_b, probs_bk = defect_scores(model, images.to(device), explanation.probs)
        wrong_b = misclassified(model, images.to(device), labels_b, probs_bk, defect_scores_b)
        maps = scorer.with_baselines(explanation.maps, masks, scorer.seed + start)
        per_image = scorer.score_images(model, maps, masks, scorer.seed + start)
        scored_b = torch.tensor(has_mask) & masks.flatten(1).any(dim=1)  # a defect mask
        table.add(per_image, wrong_b, scored_b, maps, masks)  # maps too: AUPRO of the set
        for index, item in enumerate(batch):
            defect_score = float(defect_scores_b[index])
            overlay = overlay_dir / f"{item.name}.png"
            if cfg.overlays:
                figure = _overlay_figure(
                    item,
                    index,
                    images,
                    masks,
                    has_mask[index],
                    explanation,
                    model.classes,
                    defect_score,
                    threshold,
                    float(cfg.panel_in),
                )
                save_figure(figure, overlay, dpi=int(cfg.dpi))
            pred = int(explanation.preds[index])
            row = {
                "path": str(item.path),
                "overlay": str(overlay.relative_to(output_dir)) if cfg.overlays else "",
                "true_label": item.label if item.label is not None else "",
                "predicted": model.classes[pred],
                "probability": float(explanation.probs[index, pred]),
                "defect_score": defect_score,
                "is_defect": defect_score >= threshold,
                "has_mask": has_mask[index],
            }
            for kind in kinds:
                for name in SCORE_NAMES:
                    value = float(per_image[kind][name][index]) if scored_b[index] else math.nan
                    row[f"{kind}/{name}"] = finite_or_blank(value)
            rows.append(row)
    if not rows:
        raise DataError(f"input={cfg.input}: no image could be read ({len(skipped)} skipped).")
    columns = [*BASE_COLUMNS, *(f"{kind}/{name}" for kind in kinds for name in SCORE_NAMES)]
    write_dict_rows(output_dir / PREDICTIONS_CSV, columns, rows)
    summary = {
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
        "global_epoch": info.get("global_epoch"),
        "input": str(cfg.input),
        "classes": model.classes,
        "defect_threshold": threshold,
        "threshold_policy": policy,
        "tolerance_px": tolerance_px,
        "resize": resize.value,
        "n_images": len(rows),
        "n_skipped": len(skipped),
        "skipped": skipped,
        "n_scored": table.n_images,
        **_accuracies(rows, model.classes, model.classes[model.good_index]),
        "scores": table.means(),
        "explain": table.block() | {"kinds": kinds, "split": "input", "tolerance_px": tolerance_px},
    }
    write_json(output_dir / SUMMARY_JSON, summary)
    print(f"\nExplanations of {len(rows)} image(s) written to {output_dir}")
    return summary

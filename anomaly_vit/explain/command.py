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
  the same "explain" block as a training run's summary.json (`explain.evaluate`: n_scored,
  n_misclassified, maps, baselines, pointing on the misclassified images).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from anomaly_vit.data.bad_images import OnBadImage
from anomaly_vit.data.resize import ResizeMode
from anomaly_vit.errors import enum_value, task_wrapper
from anomaly_vit.explain.evaluate import (
    BASELINES,
    defect_scores,
    misclassified,
    summarise_scores,
)
from anomaly_vit.explain.inputs import InputImage, find_inputs, load_input, training_resize
from anomaly_vit.explain.predict import (
    Explanation,
    check_kinds,
    explain_images,
    finite_or_blank,
    image_size_hw,
    load_classifier,
    patch_size_hw,
    per_image_scores,
    resolve_tolerance_px,
)
from anomaly_vit.explain.rollout import HeadFusion
from anomaly_vit.explain.scores import (
    CENTRE_BASELINE,
    RANDOM_BASELINE,
    SCORE_NAMES,
    centre_prior_maps,
    random_maps,
)
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
    return probe_grid_figure(
        images[index : index + 1],
        {kind: maps[index : index + 1] for kind, maps in explanation.maps.items()},
        masks=masks[index : index + 1] if has_mask else None,
        true_labels=[item.label] if item.label is not None else None,
        pred_labels=explanation.preds[index : index + 1],
        probs=explanation.probs[index : index + 1],
        class_names=classes,
        panel_in=panel_in,
        title=f"{item.name}: defect score {defect_score:.2f}, {verdict} at threshold {threshold:.2f}",
    )


def _mean_scores(score_rows: list[dict[str, float]], kinds: list[str]) -> dict[str, dict]:
    """Mean of each per-image score over the images that have one (NaN-aware)."""
    summary: dict[str, dict[str, float]] = {}
    for kind in kinds:
        summary[kind] = {}
        for name in SCORE_NAMES:
            values = [row[f"{kind}/{name}"] for row in score_rows if f"{kind}/{name}" in row]
            finite = [v for v in values if not np.isnan(v)]
            summary[kind][name] = float(np.mean(finite)) if finite else float("nan")
    return summary


def _explain_block(
    score_rows: list[dict[str, float]],
    wrong: list[bool],
    kinds: list[str],
    tolerance_px: int,
    maps_masks: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """The "explain" block of `explain.evaluate` from the per-image scores of masked images."""
    values = {
        kind: {
            name: torch.tensor([row[f"{kind}/{name}"] for row in score_rows], dtype=torch.float32)
            for name in SCORE_NAMES
        }
        for kind in [*kinds, *BASELINES]
    }
    block = summarise_scores(values, torch.tensor(wrong, dtype=torch.bool), maps_masks)
    return block | {"kinds": kinds, "split": "input", "tolerance_px": tolerance_px}


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
        raise ValueError(f"ckpt_path is required: {USAGE}")
    if not cfg.get("input"):
        raise ValueError(f"input is required: {USAGE}")
    on_bad_image = enum_value(OnBadImage, cfg.on_bad_image, "on_bad_image")
    head_fusion = enum_value(HeadFusion, cfg.head_fusion, "head_fusion")
    if int(cfg.batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}.")
    kinds = check_kinds(cfg.kinds, "kinds")
    model, info = load_classifier(cfg.ckpt_path, trust_pickle=bool(cfg.trust_pickle))
    model.to(_device(str(cfg.device)))
    if getattr(model, "token_head", None) is not None and "tokens" not in kinds:
        kinds.append("tokens")  # a mask-guided model's own map is always shown and scored
    threshold, policy = checkpoint_threshold(
        cfg.ckpt_path, model, cfg.get("threshold_policy"), cfg.get("threshold")
    )
    model.defect_threshold.fill_(threshold)  # every decision below (and `misclassified`) uses it
    items = find_inputs(cfg.input, cfg.get("masks"), model.classes)
    size_hw = image_size_hw(model)
    resize = training_resize(info)
    patch_hw = patch_size_hw(model)
    tolerance_px = resolve_tolerance_px(model, cfg.get("tolerance_px"))
    output_dir = Path(cfg.paths.output_dir)
    overlay_dir = output_dir / "overlays"
    rows: list[dict[str, Any]] = []
    score_rows: list[dict[str, float]] = []
    wrong: list[bool] = []  # per image: does the model get it wrong (explain.evaluate)
    skipped: list[dict[str, str]] = []
    set_maps: dict[str, list[torch.Tensor]] = {}
    set_masks: list[torch.Tensor] = []
    log.info("explaining %d image(s) from %s with %s", len(items), cfg.input, cfg.ckpt_path)
    for start in range(0, len(items), int(cfg.batch_size)):
        batch, images, masks, has_mask = _load_batch(
            items[start : start + int(cfg.batch_size)], size_hw, resize, on_bad_image, skipped
        )
        if not batch:
            continue
        device = next(model.parameters()).device
        explanation = explain_images(
            model,
            images.to(device),
            kinds,
            good_class=model.good_index,
            head_fusion=head_fusion,
            discard_ratio=float(cfg.discard_ratio),
        )
        labels = [model.classes.index(i.label) if i.label in model.classes else -1 for i in batch]
        labels_b = torch.tensor(labels)
        defect_scores_b, probs_bk = defect_scores(model, images.to(device), explanation.probs)
        wrong += misclassified(
            model, images.to(device), labels_b, probs_bk, defect_scores_b
        ).tolist()
        baselines = {
            RANDOM_BASELINE: random_maps(len(batch), size_hw, seed=int(cfg.seed) + start),
            CENTRE_BASELINE: centre_prior_maps(len(batch), size_hw),
        }
        batch_scores = per_image_scores(
            explanation.maps | baselines,
            masks,
            patch_hw,
            tolerance_px,
            float(cfg.patch_positive_share),
        )
        score_rows += batch_scores
        scored = [i for i, scores in enumerate(batch_scores) if has_mask[i] and scores]
        if scored:  # the masked images' maps, for AUPRO (a score of the whole set)
            set_masks.append(masks[scored].bool())
            for kind, maps_bhw in (explanation.maps | baselines).items():
                set_maps.setdefault(kind, []).append(maps_bhw[scored].float())
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
            scores = batch_scores[index] if has_mask[index] else {}
            for kind in kinds:
                for name in SCORE_NAMES:
                    row[f"{kind}/{name}"] = finite_or_blank(
                        scores.get(f"{kind}/{name}", float("nan"))
                    )
            rows.append(row)
    if not rows:
        raise ValueError(f"input={cfg.input}: no image could be read ({len(skipped)} skipped).")
    columns = [*BASE_COLUMNS, *(f"{kind}/{name}" for kind in kinds for name in SCORE_NAMES)]
    write_dict_rows(output_dir / PREDICTIONS_CSV, columns, rows)
    masked = [s for s, row in zip(score_rows, rows, strict=True) if row["has_mask"] and s]
    masked_wrong = [
        w for w, s, row in zip(wrong, score_rows, rows, strict=True) if row["has_mask"] and s
    ]
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
        "n_scored": len(masked),
        **_accuracies(rows, model.classes, model.classes[model.good_index]),
        "scores": _mean_scores(masked, [*kinds, RANDOM_BASELINE, CENTRE_BASELINE]),
        "explain": _explain_block(
            masked,
            masked_wrong,
            kinds,
            tolerance_px,
            {k: (torch.cat(v), torch.cat(set_masks)) for k, v in set_maps.items()},
        ),
    }
    write_json(output_dir / SUMMARY_JSON, summary)
    print(f"\nExplanations of {len(rows)} image(s) written to {output_dir}")
    return summary

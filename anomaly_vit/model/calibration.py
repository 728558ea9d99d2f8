"""Operating points chosen at the end of training: image threshold policies and the pixel threshold.

`Calibrator` (config: `calibration` in conf/train.yaml) runs the tested model over the real
validation and test images once, exactly as the exported bundle will (`deploy.network.DeployNet`:
defect score per the decision rule and the forward-only map), and returns two summary.json blocks:

- "thresholds": every policy of `model.thresholds` chosen on validation with its validation and
  test confusion counts and bootstrap 95 % intervals, the policy the model uses
  (`threshold_policy`), and the validation scores (so a later policy can be chosen on them). A
  validation split without a defective (or a good) image cannot choose: a warning says so and
  every policy holds the 0.5 fallback, marked "fallback".
- "pixel_threshold": the map value with the best per-pixel F1 over the validation defects' masks
  (pixels of every validation image with a non-empty mask pooled, at the model's input
  resolution), and on the test defects with a mask: the mask IoU and Dice the inferencer's masks
  reach (map >= pixel threshold on images the policy flags; mean over images) and the map's AUPRO.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anomaly_vit.model.thresholds import (
    DEFAULT_POLICIES,
    FALLBACK_THRESHOLD,
    parse_policy,
    policy_table,
    resolve_threshold,
)

log = logging.getLogger(__name__)
KEY = "calibration"


def best_pixel_threshold(maps_nhw: np.ndarray, masks_nhw: np.ndarray) -> dict[str, float] | None:
    """The map value whose ">= value" has the best F1 against the masks, pixels pooled over
    the images (ties: the highest value); None without a defect pixel or a background pixel."""
    values = np.asarray(maps_nhw, dtype=np.float64).ravel()
    truth = np.asarray(masks_nhw, dtype=bool).ravel()
    finite = np.isfinite(values)
    values, truth = values[finite], truth[finite]
    n_pos = int(truth.sum())
    if n_pos == 0 or n_pos == len(truth):
        return None
    order = np.argsort(-values, kind="stable")
    sorted_values, sorted_truth = values[order], truth[order]
    last_of_ties = np.flatnonzero(np.diff(sorted_values, append=-np.inf) != 0)
    tp = np.cumsum(sorted_truth)[last_of_ties]
    flagged = last_of_ties + 1
    f1 = 2 * tp / (flagged + n_pos)
    best = int(np.argmax(f1))
    precision, recall = tp[best] / flagged[best], tp[best] / n_pos
    return {
        "value": float(sorted_values[last_of_ties[best]]),
        "f1": float(f1[best]),
        "precision": float(precision),
        "recall": float(recall),
    }


def mask_overlap(predicted_nhw: np.ndarray, masks_nhw: np.ndarray) -> dict[str, float]:
    """Mean IoU and Dice of predicted vs true masks over the images (empty vs empty: 1)."""
    ious, dices = [], []
    for predicted, truth in zip(predicted_nhw, masks_nhw, strict=True):
        inter = float((predicted & truth).sum())
        union = float((predicted | truth).sum())
        total = float(predicted.sum() + truth.sum())
        ious.append(inter / union if union else 1.0)
        dices.append(2 * inter / total if total else 1.0)
    return {
        "iou": float(np.mean(ious)) if ious else float("nan"),
        "dice": float(np.mean(dices)) if dices else float("nan"),
        "n_images": len(ious),
    }


class Calibrator:
    """Chooses the threshold policies and the pixel threshold of a trained model (module doc)."""

    def __init__(
        self,
        policies: Sequence[str] = DEFAULT_POLICIES,
        bootstrap_resamples: int = 1000,
        seed: int = 0,
        batch_size: int = 32,
        key: str = KEY,
    ) -> None:
        self.policies = [parse_policy(p, f"{key}.policies").name for p in policies]
        if int(bootstrap_resamples) < 0 or int(batch_size) < 1:
            raise ValueError(
                f"{key}.bootstrap_resamples must be >= 0 and {key}.batch_size >= 1, got "
                f"{bootstrap_resamples} and {batch_size}."
            )
        self.bootstrap_resamples = int(bootstrap_resamples)
        self.seed = int(seed)
        self.batch_size = int(batch_size)

    def outputs(self, model: nn.Module, datamodule: Any, split: str) -> dict[str, np.ndarray]:
        """Defect scores, labels, maps and masks of the real images of `split`, as the bundle
        computes them (empty arrays without such a split)."""
        from anomaly_vit.deploy.network import DeployNet

        pool = datamodule.probe_pool(split, synthetic=False)
        if pool is None or len(pool) == 0:
            return {"scores": np.zeros(0), "is_defect": np.zeros(0, bool), "maps": None}
        rows = torch.tensor(pool.rows, dtype=torch.long)
        images, labels = pool.dataset.images_nchw[rows], pool.dataset.labels[rows]
        masks = torch.stack([pool.mask(j) for j in range(len(pool))]).bool()
        net = DeployNet(model)
        device = next(model.parameters()).device
        scores, maps = [], []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for first in range(0, len(rows), self.batch_size):
                    batch = images[first : first + self.batch_size].to(device)
                    _, score_b, map_bhw = net(model.normalize(batch))
                    scores.append(score_b.float().cpu())
                    maps.append(map_bhw.float().cpu())
        finally:
            model.train(was_training)
        return {
            "scores": torch.cat(scores).numpy().astype(np.float64),
            "is_defect": (labels != model.good_index).numpy(),
            "maps": torch.cat(maps).numpy(),
            "masks": masks.numpy(),
            "kind": net.kind,
        }

    def __call__(self, model: nn.Module, datamodule: Any, threshold_policy: str) -> dict:
        """{"thresholds": ..., "pixel_threshold": ...} for summary.json (module doc)."""
        chosen = parse_policy(threshold_policy, "threshold_policy").name
        policies = self.policies if chosen in self.policies else [*self.policies, chosen]
        val = self.outputs(model, datamodule, "val")
        test = self.outputs(model, datamodule, "test")
        n_defect = int(val["is_defect"].sum())
        n_good = len(val["is_defect"]) - n_defect
        warning = None
        if n_defect == 0 or n_good == 0:
            missing = "defective" if n_defect == 0 else "good"
            warning = (
                f"the validation split has no {missing} image: no threshold policy can be chosen; "
                f"every policy holds the fallback {FALLBACK_THRESHOLD} (not a choice). Put "
                f"{missing} images in validation, or set threshold=<value> at inference."
            )
            log.warning(warning)
        table = policy_table(
            val["scores"],
            val["is_defect"],
            policies,
            test=(test["scores"], test["is_defect"]),
            n_resamples=self.bootstrap_resamples,
            seed=self.seed,
        )
        thresholds = {
            "default_policy": chosen,
            "policies": table,
            "validation": {
                "scores": val["scores"].tolist(),
                "is_defect": val["is_defect"].astype(bool).tolist(),
            },
            "n_val": {"defect": n_defect, "good": n_good},
            "warning": warning,
        }
        return {
            "thresholds": thresholds,
            "pixel_threshold": self._pixel_threshold(val, test, table[chosen]["threshold"]),
        }

    def _pixel_threshold(self, val: dict, test: dict, image_threshold: float) -> dict[str, Any]:
        from anomaly_vit.maps.scores import aupro

        kind = val.get("kind") or test.get("kind")
        block: dict[str, Any] = {"kind": kind, "value": None}
        if val["maps"] is not None:
            masked = val["is_defect"] & val["masks"].reshape(len(val["masks"]), -1).any(axis=1)
            best = best_pixel_threshold(val["maps"][masked], val["masks"][masked])
            if best is not None:
                block |= {
                    "value": best["value"],
                    "method": f"best per-pixel F1 on {int(masked.sum())} validation defect mask(s)",
                    "val": best | {"n_images": int(masked.sum())},
                }
        if block["value"] is None:
            log.warning(
                "no validation defect has a mask: the pixel threshold falls back to the map "
                "kind's natural value (docs/deploy.md)"
            )
            return block | {"method": "fallback: no validation defect mask"}
        if test["maps"] is not None:
            masked = test["is_defect"] & test["masks"].reshape(len(test["masks"]), -1).any(axis=1)
            maps, masks = test["maps"][masked], test["masks"][masked]
            flagged = test["scores"][masked] >= image_threshold
            predicted = (maps >= block["value"]) & flagged[:, None, None]
            block["test"] = mask_overlap(predicted, masks) | {
                "aupro": aupro(torch.from_numpy(maps), torch.from_numpy(masks))
                if len(maps)
                else float("nan")
            }
        return block


def checkpoint_threshold(
    ckpt_path: str | Path,
    model: nn.Module,
    threshold_policy: str | None = None,
    threshold: float | None = None,
) -> tuple[float, str]:
    """(threshold, policy name) a checkpoint decides with: `threshold` (a number, "manual"),
    `threshold_policy` (stored in the run's summary.json "thresholds", or chosen now on its
    validation scores), else the run's chosen policy; a run without policies (trained before
    they existed) has only its stored threshold, as "youden"."""
    from anomaly_vit.rundir import CHECKPOINTS_DIR, SUMMARY_JSON, read_json

    path = Path(ckpt_path).expanduser().resolve()
    summary_path = path.parents[1] / SUMMARY_JSON if path.parent.name == CHECKPOINTS_DIR else None
    block = {}
    if summary_path is not None and summary_path.is_file():
        try:
            block = read_json(summary_path).get("thresholds") or {}
        except (OSError, ValueError):
            log.warning(
                "%s cannot be read: the checkpoint's stored threshold is used", summary_path
            )
    stored = block.get("policies") or {"youden": {"threshold": float(model.defect_threshold)}}
    where = f"{summary_path}" if block else f"ckpt_path={ckpt_path} (no policies in summary.json)"
    return resolve_threshold(
        stored,
        block.get("default_policy", "youden"),
        block.get("validation"),
        threshold_policy,
        threshold,
        where=where,
    )

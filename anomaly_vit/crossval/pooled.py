"""Out-of-fold scores pooled over every photo: AUROC, AP and balanced accuracy with bootstrap
intervals, the per-fold rows, and the folds' map scores pooled.

Every photo is scored once, by the model of the one fold that did not train on it. AUROC and
AP rank all pooled scores together; balanced accuracy counts each photo's `predicted` (its
score against its own fold's validation threshold). Intervals are percentile intervals of a
bootstrap that resamples photos with replacement, within each class (so every resample holds
both classes and the defect share stays the data's), seeded.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc, binary_average_precision

OOF_COLUMNS = ("path", "item", "fold", "label", "is_defect", "score", "predicted")
METRICS = ("auroc", "ap", "balanced_acc")


@dataclass(frozen=True)
class Bootstrap:
    """`cv.bootstrap`: resamples, interval level and seed."""

    n_boot: int = 2000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n_boot) < 1:
            raise ValueError(f"cv.bootstrap.n_boot must be >= 1, got {self.n_boot}.")
        if not 0.0 < float(self.level) < 1.0:
            raise ValueError(f"cv.bootstrap.level must be in (0, 1), got {self.level}.")


# --------------------------------------------------------------------------------- metrics
def auroc(scores: np.ndarray, is_defect: np.ndarray) -> float:
    return float(binary_auroc(torch.as_tensor(scores), torch.as_tensor(is_defect).long()))


def average_precision(scores: np.ndarray, is_defect: np.ndarray) -> float:
    return float(
        binary_average_precision(torch.as_tensor(scores), torch.as_tensor(is_defect).long())
    )


def balanced_accuracy(predicted: np.ndarray, is_defect: np.ndarray) -> float:
    """Mean of the defect recall and the good recall of thresholded predictions."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(is_defect, bool)
    return float(
        ((predicted & truth).sum() / truth.sum() + (~predicted & ~truth).sum() / (~truth).sum()) / 2
    )


def point_metrics(scores: np.ndarray, is_defect: np.ndarray, predicted: np.ndarray) -> dict:
    """AUROC, AP and balanced accuracy (NaN where a class is missing)."""
    if is_defect.all() or not is_defect.any():
        return dict.fromkeys(METRICS, math.nan)
    return {
        "auroc": auroc(scores, is_defect),
        "ap": average_precision(scores, is_defect),
        "balanced_acc": balanced_accuracy(predicted, is_defect),
    }


def weighted_metrics(
    scores: np.ndarray, is_defect: np.ndarray, predicted: np.ndarray, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """The three metrics of `counts.shape[0]` resamples at once: `counts` [B, N] says how often
    each photo is drawn. Exact: AUROC is the Mann-Whitney count (ties half) over the drawn
    pairs, AP the step sum over distinct scores (torchmetrics' and scikit-learn's definition),
    balanced accuracy the mean of the drawn recalls."""
    counts = np.asarray(counts, dtype=np.float64)
    d, g = counts[:, is_defect], counts[:, ~is_defect]
    n_d, n_g = d.sum(axis=1), g.sum(axis=1)
    s_d, s_g = scores[is_defect], scores[~is_defect]
    above = (s_d[:, None] > s_g[None, :]) + 0.5 * (s_d[:, None] == s_g[None, :])
    auroc_b = ((d @ above) * g).sum(axis=1) / (n_d * n_g)
    # recall only steps at a defect photo's score: the other thresholds add nothing to AP
    levels = np.unique(s_d)[::-1]
    tp = d @ (s_d[:, None] >= levels[None, :])  # [B, U]
    fp = g @ (s_g[:, None] >= levels[None, :])
    recall = tp / n_d[:, None]
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    step = np.diff(np.concatenate([np.zeros((len(counts), 1)), recall], axis=1), axis=1)
    ap_b = (step * precision).sum(axis=1)
    hit_d, hit_g = d @ predicted[is_defect], g @ ~predicted[~is_defect]
    balanced_b = (hit_d / n_d + hit_g / n_g) / 2
    return {"auroc": auroc_b, "ap": ap_b, "balanced_acc": balanced_b}


def resample_counts(is_defect: np.ndarray, boot: Bootstrap) -> np.ndarray:
    """[n_boot, N]: how often each photo is drawn in each resample, drawn with replacement
    within each class (every resample keeps the data's numbers of good and defective photos)."""
    rng = np.random.default_rng(int(boot.seed))
    n_d, n_g = int(is_defect.sum()), int((~is_defect).sum())
    counts = np.zeros((int(boot.n_boot), len(is_defect)))
    counts[:, is_defect] = rng.multinomial(n_d, np.full(n_d, 1.0 / n_d), size=int(boot.n_boot))
    counts[:, ~is_defect] = rng.multinomial(n_g, np.full(n_g, 1.0 / n_g), size=int(boot.n_boot))
    return counts


def _interval(values: np.ndarray, level: float) -> list[float]:
    tail = (1.0 - float(level)) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def bootstrap_intervals(
    scores: np.ndarray, is_defect: np.ndarray, predicted: np.ndarray, boot: Bootstrap
) -> dict[str, list[float]]:
    """{metric: [low, high]}: percentile interval of `boot.n_boot` resamples of the photos,
    drawn with replacement within each class (`resample_counts`)."""
    scores = np.asarray(scores, dtype=np.float64)
    is_defect, predicted = np.asarray(is_defect, bool), np.asarray(predicted, bool)
    if is_defect.all() or not is_defect.any():
        return {name: [math.nan, math.nan] for name in METRICS}
    values = weighted_metrics(scores, is_defect, predicted, resample_counts(is_defect, boot))
    return {name: _interval(v, boot.level) for name, v in values.items()}


def paired_difference(
    rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]], boot: Bootstrap
) -> dict[str, dict[str, Any]]:
    """{metric: {"diff": a - b, "ci": [low, high]}} of two arms scored on the same photos: each
    resample draws the same photos for both, so what the photos share cancels out."""
    by_path = {r["path"]: r for r in rows_b}
    if set(by_path) != {r["path"] for r in rows_a} or len(by_path) != len(rows_a):
        raise ValueError("a paired difference needs the same photos in both arms' oof_scores.csv")
    scores_a, is_defect, predicted_a = arrays(rows_a)
    scores_b, _, predicted_b = arrays([by_path[r["path"]] for r in rows_a])
    point_a = point_metrics(scores_a, is_defect, predicted_a)
    point_b = point_metrics(scores_b, is_defect, predicted_b)
    if is_defect.all() or not is_defect.any():
        return {n: {"diff": math.nan, "ci": [math.nan, math.nan]} for n in METRICS}
    counts = resample_counts(is_defect, boot)
    a = weighted_metrics(scores_a, is_defect, predicted_a, counts)
    b = weighted_metrics(scores_b, is_defect, predicted_b, counts)
    return {
        name: {
            "diff": point_a[name] - point_b[name],
            "ci": _interval(a[name] - b[name], boot.level),
        }
        for name in METRICS
    }


# ----------------------------------------------------------------------------- oof rows
def read_oof(path: Path) -> list[dict[str, Any]]:
    """Rows of an oof_scores.csv with typed fold, is_defect, score and predicted."""
    with Path(path).open(newline="") as handle:
        return [
            row | {"fold": int(row["fold"]), "is_defect": int(row["is_defect"]),
                   "score": float(row["score"]), "predicted": int(row["predicted"])}
            for row in csv.DictReader(handle)
        ]  # fmt: skip


def arrays(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, is_defect, predicted) of oof rows."""
    return (
        np.array([r["score"] for r in rows], dtype=np.float64),
        np.array([r["is_defect"] for r in rows], dtype=bool),
        np.array([r["predicted"] for r in rows], dtype=bool),
    )


def pooled_block(rows: Sequence[Mapping[str, Any]], boot: Bootstrap) -> dict[str, Any]:
    """cv_summary.json "pooled": counts, the three metrics and their intervals."""
    scores, is_defect, predicted = arrays(rows)
    block: dict[str, Any] = {"n_images": len(rows), "n_defect": int(is_defect.sum())}
    block.update(point_metrics(scores, is_defect, predicted))
    intervals = bootstrap_intervals(scores, is_defect, predicted, boot)
    block.update({f"{name}_ci": intervals[name] for name in METRICS})
    block["bootstrap"] = {"n_boot": int(boot.n_boot), "level": float(boot.level),
                          "seed": int(boot.seed), "resample": "photos, within each class"}  # fmt: skip
    return block


def fold_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """n, n_defect and the three metrics of one fold's rows."""
    scores, is_defect, predicted = arrays(rows)
    return {"n": len(rows), "n_defect": int(is_defect.sum())} | point_metrics(
        scores, is_defect, predicted
    )


def spread(fold_rows: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """{metric: [mean, std]} over the folds (the fold-to-fold spread beside the pooled value)."""
    out = {}
    for name in METRICS:
        values = [float(r[name]) for r in fold_rows if r.get(name) is not None]
        values = [v for v in values if math.isfinite(v)]
        if values:
            out[name] = [
                float(np.mean(values)),
                float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            ]
    return out


# ----------------------------------------------------------------------------- map scores
def pooled_maps(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The folds' end-of-run "explain" blocks pooled: each mean weighted by the fold's images
    (n_scored; n_misclassified for pointing_misclassified), NaN means left out."""
    blocks = [b for b in blocks if b and b.get("n_scored")]
    if not blocks:
        return {}

    def pool(group: str) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        kinds = sorted({kind for b in blocks for kind in b.get(group, {})})
        for kind in kinds:
            names = sorted({n for b in blocks for n in b.get(group, {}).get(kind, {})})
            out[kind] = {}
            for name in names:
                weight_key = "n_misclassified" if name == "pointing_misclassified" else "n_scored"
                pairs = [
                    (float(b[group][kind][name]), float(b[weight_key]))
                    for b in blocks
                    if b.get(group, {}).get(kind, {}).get(name) is not None
                    and math.isfinite(float(b[group][kind][name]))
                    and b[weight_key]
                ]
                total = sum(w for _, w in pairs)
                out[kind][name] = sum(v * w for v, w in pairs) / total if total else None
        return out

    return {
        "n_scored": sum(int(b["n_scored"]) for b in blocks),
        "n_misclassified": sum(int(b.get("n_misclassified", 0)) for b in blocks),
        "n_folds": len(blocks),
        "maps": pool("maps"),
        "baselines": pool("baselines"),
    }

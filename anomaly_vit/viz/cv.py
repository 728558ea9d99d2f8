"""The cross-validation plot: each fold's ROC (thin) and the pooled out-of-fold ROC (thick),
AUROC with its bootstrap interval in the legend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchmetrics.functional.classification import binary_auroc, binary_roc  # noqa: E402

from anomaly_vit.rundir import atomic_write  # noqa: E402


def _roc(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray] | None:
    truth = torch.tensor([int(r["is_defect"]) for r in rows])
    if truth.numel() == 0 or truth.all() or not truth.any():
        return None
    fpr, tpr, _ = binary_roc(torch.tensor([float(r["score"]) for r in rows]), truth)
    return fpr.numpy(), tpr.numpy()


def _auroc(rows: Sequence[Mapping[str, Any]]) -> float:
    scores = torch.tensor([float(r["score"]) for r in rows])
    return float(binary_auroc(scores, torch.tensor([int(r["is_defect"]) for r in rows])))


def save_cv_plot(
    rows: Sequence[Mapping[str, Any]], pooled: Mapping[str, Any], path: Path, title: str = ""
) -> Path:
    """cv.png from the pooled oof rows and cv_summary.json's "pooled" block."""
    fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
    for fold in sorted({int(r["fold"]) for r in rows}):
        fold_rows = [r for r in rows if int(r["fold"]) == fold]
        curve = _roc(fold_rows)
        if curve is not None:
            ax.plot(*curve, lw=1, alpha=0.6, label=f"fold {fold} (AUROC {_auroc(fold_rows):.3f})")
    curve = _roc(rows)
    if curve is not None:
        low, high = pooled["auroc_ci"]
        level = int(round(float(pooled["bootstrap"]["level"]) * 100))
        ax.plot(*curve, lw=2.5, color="black",
                label=f"pooled AUROC {pooled['auroc']:.3f} [{low:.3f}, {high:.3f}] ({level}%)")  # fmt: skip
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    ax.set_xlabel("false positive rate (good photos called defective)")
    ax.set_ylabel("true positive rate (defective photos found)")
    ax.set_title(
        f"{title}\n{pooled['n_images']} photos, {pooled['n_defect']} defective", fontsize=9
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
    plt.close(fig)
    return path

"""Confusion counts and the ROC point of a labelled photo set at a threshold.

A photo is called a defect when its score is at least the threshold: the counts are those of
`anomaly_vit.model.thresholds.confusion`, the rule the policies were chosen with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anomaly_vit.model.thresholds import confusion


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold; `defect` is the positive class."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def recall(self) -> float:
        """Share of defects caught (the ROC's y); NaN without defects."""
        positives = self.tp + self.fn
        return self.tp / positives if positives else math.nan

    @property
    def false_alarm_rate(self) -> float:
        """Share of good photos called defects (the ROC's x); NaN without good photos."""
        negatives = self.fp + self.tn
        return self.fp / negatives if negatives else math.nan


def confusion_at(scores: Sequence[float], is_defect: Sequence[bool], threshold: float) -> Confusion:
    """The counts when every photo scoring at least `threshold` is called a defect."""
    scores_n, truth_n = np.asarray(scores, dtype=np.float64), np.asarray(is_defect, dtype=bool)
    if scores_n.shape != truth_n.shape:
        raise ValueError(f"{scores_n.size} scores but {truth_n.size} labels")
    counts = confusion(scores_n, truth_n, threshold)
    return Confusion(float(threshold), *(int(counts[k]) for k in ("tp", "fp", "tn", "fn")))


def roc_points(scores: Sequence[float], is_defect: Sequence[bool]) -> list[tuple[float, float]]:
    """(false alarm rate, recall) at every distinct score as threshold, from (0, 0) to (1, 1)."""
    points = [(0.0, 0.0)]
    for threshold in sorted(set(float(s) for s in scores), reverse=True):
        c = confusion_at(scores, is_defect, threshold)
        points.append((c.false_alarm_rate, c.recall))
    points.append((1.0, 1.0))
    kept = [(x, y) for x, y in points if not (math.isnan(x) or math.isnan(y))]
    return [p for i, p in enumerate(kept) if i == 0 or p != kept[i - 1]]

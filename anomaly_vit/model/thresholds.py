"""Image-level threshold policies: where to cut the defect score, chosen on validation scores.

A policy names a rule; `choose_threshold` applies it to validation scores (an image is flagged
as defective when its score >= the threshold):

- ``youden``: the cut with the best tpr - fpr (balanced accuracy); ties go to the highest cut.
- ``max_f1``: the cut with the best F1 of the defect class; ties go to the highest cut.
- ``recall:<r>``: the highest cut that still flags at least a share r of the validation defects
  (``recall:1.0``: no escapes on validation).
- ``fpr:<f>``: the lowest cut that flags at most a share f of the good validation images as
  defective (``fpr:0.01``: at most 1 % false alarms on validation).

Candidate cuts are the distinct scores and one above them all (1.0, or just above a score of 1.0:
nothing flagged), so a chosen threshold is always a cut the validation images distinguish. Tied scores fall
on the same side. Without a defective or a good validation image no rule can choose: the
threshold is the 0.5 fallback, marked as such (`FALLBACK_THRESHOLD`).

numpy only: the training module, the exporter and the torch-free inferencer share it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MANUAL_POLICY = "manual"  # the name of a threshold given as a number
NOTHING_FLAGGED = 1.0  # the cut above every defect score (a probability): flags nothing
TIE_TOLERANCE = 1e-12  # rates closer than this are equal (floating-point rounding)
FALLBACK_THRESHOLD = 0.5  # used (and named) when validation has no defect or no good image
DEFAULT_POLICIES = ("youden", "max_f1", "recall:1.0", "recall:0.95", "fpr:0.01", "fpr:0.05")
NAMED_POLICIES = ("youden", "max_f1")
TARGET_POLICIES = ("recall", "fpr")
POLICY_FORMS = "youden, max_f1, recall:<r> or fpr:<f> with r, f in [0, 1] (e.g. recall:0.95)"
_TARGET = re.compile(r"^(recall|fpr):([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)$")


class PolicyError(ValueError):
    """A threshold policy string that names no known rule."""


@dataclass(frozen=True)
class Policy:
    """A parsed policy: `kind` (youden, max_f1, recall, fpr) and its target share (or None)."""

    kind: str
    target: float | None = None

    @property
    def name(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target!r}"


def parse_policy(text: str, key: str = "threshold_policy") -> Policy:
    """`text` as a `Policy`; an unknown form raises `PolicyError` naming `key` and the forms."""
    value = str(text).strip()
    if value in NAMED_POLICIES:
        return Policy(value)
    match = _TARGET.match(value)
    if match and 0.0 <= float(match.group(2)) <= 1.0:
        return Policy(match.group(1), float(match.group(2)))
    raise PolicyError(f"{key}={text!r} is not a threshold policy: use {POLICY_FORMS}.")


def confusion(scores: np.ndarray, is_defect: np.ndarray, threshold: float) -> dict[str, float]:
    """Counts (tp, fp, tn, fn) and rates (recall, fpr, precision, f1) of flagging score >= threshold."""
    scores, is_defect = np.asarray(scores, dtype=np.float64), np.asarray(is_defect, dtype=bool)
    flagged = scores >= threshold
    tp, fp = int((flagged & is_defect).sum()), int((flagged & ~is_defect).sum())
    fn, tn = int((~flagged & is_defect).sum()), int((~flagged & ~is_defect).sum())
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "fpr": fp / (fp + tn) if fp + tn else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
    }


def _curve(scores: np.ndarray, is_defect: np.ndarray) -> tuple[np.ndarray, ...]:
    """Candidate cuts (descending) and (tp, fp) of flagging score >= each cut."""
    cuts = np.unique(scores)[::-1]
    above = max(NOTHING_FLAGGED, float(np.nextafter(np.float32(cuts[0]), np.float32(np.inf))))
    cuts = np.concatenate([[above], cuts])
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_defect = scores[order], is_defect[order]
    # number of images with score >= cut: right side of the descending search
    n_flagged = np.searchsorted(-sorted_scores, -cuts, side="right")
    tp_cum = np.concatenate([[0], np.cumsum(sorted_defect)])
    fp_cum = np.concatenate([[0], np.cumsum(~sorted_defect)])
    return cuts, tp_cum[n_flagged], fp_cum[n_flagged]


def _first_best(values: np.ndarray) -> int:
    """The first (highest-cut) index whose value ties the best (rounding-tolerant: 1 - 1/3 and
    2/3 are one value)."""
    return int(np.flatnonzero(values >= values.max() - TIE_TOLERANCE)[0])


def choose_threshold(
    scores: Sequence[float], is_defect: Sequence[bool], policy: Policy | str
) -> float | None:
    """The threshold `policy` picks on these validation scores; None when validation has no
    defective or no good image (the caller falls back to `FALLBACK_THRESHOLD`, named)."""
    policy = parse_policy(policy) if isinstance(policy, str) else policy
    scores = np.asarray(scores, dtype=np.float64)
    is_defect = np.asarray(is_defect, dtype=bool)
    n_defect, n_good = int(is_defect.sum()), int((~is_defect).sum())
    if n_defect == 0 or n_good == 0:
        return None
    cuts, tp, fp = _curve(scores, is_defect)
    recall, fpr = tp / n_defect, fp / n_good
    if policy.kind == "youden":
        best = _first_best(recall - fpr)
    elif policy.kind == "max_f1":
        best = _first_best(2 * tp / np.maximum(2 * tp + fp + (n_defect - tp), 1))
    elif policy.kind == "recall":
        # recall grows as the cut falls: the first cut reaching the target is the highest
        best = int(np.argmax(recall >= policy.target - TIE_TOLERANCE))
    else:
        # fpr grows as the cut falls: the last cut within the budget is the lowest
        within = np.flatnonzero(fpr <= policy.target + TIE_TOLERANCE)
        best = int(within[-1])
    return float(cuts[best])


def bootstrap_interval(
    scores: np.ndarray,
    is_defect: np.ndarray,
    policy: Policy,
    test: tuple[np.ndarray, np.ndarray] | None,
    n_resamples: int,
    seed: int,
) -> dict[str, list[float] | int]:
    """95 % intervals of the threshold the policy picks when the validation images are
    resampled with replacement, and of the test recall and fpr at those thresholds."""
    rng = np.random.default_rng(seed)
    thresholds, recalls, fprs = [], [], []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(scores), len(scores))
        value = choose_threshold(scores[pick], is_defect[pick], policy)
        if value is None:
            continue
        thresholds.append(value)
        if test is not None:
            counts = confusion(*test, value)
            recalls.append(counts["recall"])
            fprs.append(counts["fpr"])

    def interval(values: list[float]) -> list[float] | None:
        finite = [v for v in values if np.isfinite(v)]
        return [float(v) for v in np.percentile(finite, [2.5, 97.5])] if finite else None

    return {
        "n_resamples": len(thresholds),
        "threshold": interval(thresholds),
        "test_recall": interval(recalls),
        "test_fpr": interval(fprs),
    }


def policy_table(
    val_scores: Sequence[float],
    val_is_defect: Sequence[bool],
    policies: Sequence[str] = DEFAULT_POLICIES,
    test: tuple[Sequence[float], Sequence[bool]] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict]:
    """Every policy's threshold with its validation (and test) confusion and bootstrap intervals.

    {name: {"threshold", "fallback", "val": counts, "test": counts | None, "bootstrap": ...}};
    "fallback" is True where validation could not choose (no defect or no good image).
    """
    scores = np.asarray(val_scores, dtype=np.float64)
    is_defect = np.asarray(val_is_defect, dtype=bool)
    test_arrays = None
    if test is not None and len(test[0]):
        test_arrays = (np.asarray(test[0], np.float64), np.asarray(test[1], dtype=bool))
    table: dict[str, dict] = {}
    for text in policies:
        policy = parse_policy(text, key="model.threshold_policies")
        chosen = choose_threshold(scores, is_defect, policy)
        threshold = FALLBACK_THRESHOLD if chosen is None else chosen
        table[policy.name] = {
            "threshold": threshold,
            "fallback": chosen is None,
            "val": confusion(scores, is_defect, threshold),
            "test": confusion(*test_arrays, threshold) if test_arrays is not None else None,
            "bootstrap": None
            if chosen is None
            else bootstrap_interval(scores, is_defect, policy, test_arrays, n_resamples, seed),
        }
    return table


def resolve_threshold(
    stored: Mapping[str, Mapping],
    default_policy: str,
    validation: Mapping | None = None,
    threshold_policy: str | None = None,
    threshold: float | str | None = None,
    where: str = "the model",
) -> tuple[float, str]:
    """(threshold, policy name) to decide with: a number overrides every policy ("manual"); a
    policy `stored` (name -> {"threshold": ...}), or a policy form chosen now on the stored
    `validation` {"scores", "is_defect"}; else `default_policy`. `PolicyError` otherwise,
    naming what `where` stores."""
    if threshold is not None:
        try:
            return float(threshold), MANUAL_POLICY
        except (TypeError, ValueError):
            raise PolicyError(f"threshold={threshold!r} is not a number; give e.g. 0.5.") from None
    name = str(threshold_policy if threshold_policy is not None else default_policy)
    if name in stored:
        return float(stored[name]["threshold"]), name
    try:
        policy = parse_policy(name)
    except PolicyError as error:
        raise PolicyError(f"{error} Stored in {where}: {sorted(stored)}.") from None
    if policy.name in stored:
        return float(stored[policy.name]["threshold"]), policy.name
    value = None
    if validation and validation.get("scores"):
        value = choose_threshold(validation["scores"], validation["is_defect"], policy)
    if value is None:
        raise PolicyError(
            f"threshold_policy={policy.name!r} is not stored in {where}, and {where} holds no "
            f"validation scores of both classes to choose it on: use one of {sorted(stored)} "
            "or threshold=<value>."
        )
    return value, policy.name

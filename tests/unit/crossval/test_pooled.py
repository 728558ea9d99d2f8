"""Pooled out-of-fold metrics: bootstrap intervals, the folds' map scores, one row per photo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anomaly_vit.cli.cv import check_once
from anomaly_vit.crossval.pooled import (
    Bootstrap,
    bootstrap_intervals,
    paired_difference,
    point_metrics,
    pooled_maps,
    weighted_metrics,
)

Z_95 = 1.959964


def _photos(n_defect: int, n_good: int, recall_defect: float, recall_good: float, copies: int = 1):
    """Scores and predictions with exactly these recalls at threshold 0.5 (scores spread so the
    AUROC is below 1), repeated `copies` times."""
    rng = np.random.default_rng(0)
    hit_d, hit_g = round(n_defect * recall_defect), round(n_good * recall_good)
    defect = np.r_[rng.uniform(0.5, 1.0, hit_d), rng.uniform(0.0, 0.5, n_defect - hit_d)]
    good = np.r_[rng.uniform(0.0, 0.5, hit_g), rng.uniform(0.5, 1.0, n_good - hit_g)]
    scores = np.tile(np.r_[defect, good], copies)
    is_defect = np.tile(np.r_[np.ones(n_defect, bool), np.zeros(n_good, bool)], copies)
    return scores, is_defect, scores >= 0.5


def test_balanced_accuracy_interval_is_the_binomial_one_and_halves_with_four_times_the_photos():
    # resampling within each class: each recall is binomial, so the balanced accuracy has
    # sd = sqrt(rd(1-rd)/nd + rg(1-rg)/ng) / 2 and a 95 % interval ~ 2 * 1.96 * sd wide
    boot = Bootstrap(n_boot=2000, level=0.95, seed=1)
    widths = []
    for copies in (1, 4):
        scores, is_defect, predicted = _photos(100, 200, 0.8, 0.9, copies)
        point = point_metrics(scores, is_defect, predicted)
        assert point["balanced_acc"] == pytest.approx(0.85)
        intervals = bootstrap_intervals(scores, is_defect, predicted, boot)
        for name, (low, high) in intervals.items():
            assert low <= point[name] <= high, name
        low, high = intervals["balanced_acc"]
        sd = math.sqrt(0.8 * 0.2 / (100 * copies) + 0.9 * 0.1 / (200 * copies)) / 2
        assert high - low == pytest.approx(2 * Z_95 * sd, rel=0.08)
        widths.append(high - low)
    assert widths[1] / widths[0] == pytest.approx(0.5, abs=0.05)


def test_intervals_are_seeded():
    scores, is_defect, predicted = _photos(20, 40, 0.8, 0.9)
    a = bootstrap_intervals(scores, is_defect, predicted, Bootstrap(200, 0.95, seed=3))
    b = bootstrap_intervals(scores, is_defect, predicted, Bootstrap(200, 0.95, seed=3))
    c = bootstrap_intervals(scores, is_defect, predicted, Bootstrap(200, 0.95, seed=4))
    assert a == b and a != c


def test_map_scores_pool_weighted_by_the_images_each_fold_scored():
    blocks = [
        {"n_scored": 1, "n_misclassified": 1,
         "maps": {"contrast": {"pointing": 0.0, "pointing_misclassified": 0.0}},
         "baselines": {"random": {"pointing": 0.5, "pointing_misclassified": 0.0}}},
        {"n_scored": 3, "n_misclassified": 0,
         "maps": {"contrast": {"pointing": 1.0, "pointing_misclassified": None}},
         "baselines": {"random": {"pointing": 0.1, "pointing_misclassified": None}}},
        {"n_scored": 0, "n_misclassified": 0, "maps": {}, "baselines": {}},
    ]  # fmt: skip
    pooled = pooled_maps(blocks)
    assert pooled["n_scored"] == 4 and pooled["n_folds"] == 2
    assert pooled["maps"]["contrast"]["pointing"] == pytest.approx(0.75)
    assert pooled["maps"]["contrast"]["pointing_misclassified"] == 0.0  # fold 2 has none
    assert pooled["baselines"]["random"]["pointing"] == pytest.approx((0.5 + 3 * 0.1) / 4)


def test_a_photo_scored_by_two_folds_is_refused():
    rows = [
        {"path": "a.png", "fold": 0},
        {"path": "b.png", "fold": 1},
        {"path": "a.png", "fold": 2},
    ]
    with pytest.raises(ValueError, match=r"a\.png is scored by fold 0 and fold 2"):
        check_once(rows)
    check_once(rows[:2])


def test_resampled_metrics_with_every_photo_once_are_torchmetrics_own():
    rng = np.random.default_rng(5)
    scores = np.round(rng.uniform(size=60), 1)  # ties on purpose
    is_defect = rng.uniform(size=60) < 0.3
    predicted = scores >= 0.6
    once = weighted_metrics(scores, is_defect, predicted, np.ones((1, 60)))
    twice = weighted_metrics(scores, is_defect, predicted, np.full((1, 60), 2.0))
    for name, value in point_metrics(scores, is_defect, predicted).items():
        assert once[name][0] == pytest.approx(value, abs=1e-6), name
        assert twice[name][0] == pytest.approx(value, abs=1e-6), name
    drawn = np.zeros((1, 60))
    drawn[0, :30] = 1  # a resample of the first 30 photos only: their own metrics
    half = point_metrics(scores[:30], is_defect[:30], predicted[:30])
    for name, value in weighted_metrics(scores, is_defect, predicted, drawn).items():
        assert value[0] == pytest.approx(half[name], abs=1e-6), name


def test_resamples_keep_the_defect_count_so_a_rare_class_never_drops_out():
    # 2 defective photos in 102: a plain resample has none ~13 % of the time (undefined
    # metrics); resampled within each class, every resample keeps both
    scores, is_defect, predicted = _photos(2, 100, 0.5, 0.9)
    intervals = bootstrap_intervals(scores, is_defect, predicted, Bootstrap(500, 0.95, seed=0))
    for name, (low, high) in intervals.items():
        assert math.isfinite(low) and math.isfinite(high), name
    low, high = intervals["balanced_acc"]
    # the defect recall can only be 0, 1/2 or 1: the interval ends sit on those steps
    assert low == pytest.approx((0.0 + 0.9) / 2, abs=0.04) and high == pytest.approx(
        (1.0 + 0.9) / 2, abs=0.04
    )


def test_a_paired_difference_only_varies_with_the_photos_the_arms_disagree_on():
    scores_b, is_defect, predicted_b = _photos(100, 200, 0.8, 0.9)
    scores_a, predicted_a = scores_b.copy(), predicted_b.copy()
    misses = np.flatnonzero(is_defect & ~predicted_b)[:10]
    scores_a[misses], predicted_a[misses] = 0.75, True  # arm a finds 10 more of 100 defects

    def rows(scores, predicted):
        return [{"path": f"p{i}.png", "score": s, "is_defect": int(d), "predicted": int(p)}
                for i, (s, d, p) in enumerate(zip(scores, is_defect, predicted, strict=True))]  # fmt: skip

    diff = paired_difference(rows(scores_a, predicted_a), rows(scores_b, predicted_b),
                             Bootstrap(2000, 0.95, seed=2))  # fmt: skip
    low, high = diff["balanced_acc"]["ci"]
    assert diff["balanced_acc"]["diff"] == pytest.approx(10 / 100 / 2)
    # only the 10 photos differ: the difference is Binomial(100, 0.1) / 200 per resample
    assert high - low == pytest.approx(2 * Z_95 * math.sqrt(100 * 0.1 * 0.9) / 200, rel=0.15)
    same = paired_difference(
        rows(scores_b, predicted_b), rows(scores_b, predicted_b), Bootstrap(50)
    )
    assert all(d["diff"] == 0 and d["ci"] == [0.0, 0.0] for d in same.values())

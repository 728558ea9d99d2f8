"""Threshold policies on hand-made validation scores: youden, max_f1, recall:<r>, fpr:<f>, ties,
a validation split without defects, unknown policy strings, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_vit.model.thresholds import (
    FALLBACK_THRESHOLD,
    PolicyError,
    choose_threshold,
    confusion,
    parse_policy,
    policy_table,
)

# goods 0.1 .. 0.6, defects 0.45, 0.7, 0.8. Cuts from the top, (tp, fp): 0.8 (1, 0), 0.7 (2, 0),
# 0.6 (2, 1), 0.5 (2, 2), 0.45 (3, 2), 0.4 (3, 3), ...
#   youden tpr - fpr: 0.7 -> 2/3 and 0.45 -> 1 - 2/6 = 2/3 tie; the higher cut wins: 0.7
#   F1: 0.8 -> 0.5, 0.7 -> 0.8, 0.6 -> 0.667, 0.45 -> 0.75: 0.7
#   recall:1.0 -> the highest cut flagging all 3 defects: 0.45; recall:0.6 -> 0.7 (2/3)
#   fpr:0.0 -> the lowest cut without a false alarm: 0.7; fpr:0.2 -> 0.6 (1/6); fpr:0.34 -> 0.45
GOOD = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
DEFECT = [0.45, 0.7, 0.8]
SCORES = np.array(GOOD + DEFECT)
IS_DEFECT = np.array([False] * len(GOOD) + [True] * len(DEFECT))


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("youden", 0.7),
        ("max_f1", 0.7),
        ("recall:1.0", 0.45),
        ("recall:0.6", 0.7),
        ("fpr:0.0", 0.7),
        ("fpr:0.2", 0.6),
        ("fpr:0.34", 0.45),
    ],
)
def test_each_policy_picks_the_hand_computed_cut(policy, expected):
    assert choose_threshold(SCORES, IS_DEFECT, policy) == pytest.approx(expected)


def test_the_picked_cut_meets_its_target_on_validation():
    for target in (1.0, 0.6, 0.34):
        counts = confusion(
            SCORES, IS_DEFECT, choose_threshold(SCORES, IS_DEFECT, f"recall:{target}")
        )
        assert counts["recall"] >= target
    counts = confusion(SCORES, IS_DEFECT, choose_threshold(SCORES, IS_DEFECT, "fpr:0.2"))
    assert counts["fpr"] <= 0.2 and (counts["tp"], counts["fp"]) == (2, 1)


def test_tied_scores_fall_on_one_side():
    """A good and a defect image tied at 0.5: keeping the defect flags the good one too."""
    scores, is_defect = np.array([0.5, 0.5, 0.9]), np.array([False, True, True])
    assert choose_threshold(scores, is_defect, "recall:1.0") == 0.5
    assert confusion(scores, is_defect, 0.5)["fp"] == 1
    assert choose_threshold(scores, is_defect, "fpr:0.0") == 0.9
    # youden: 0.9 -> 1/2 - 0, 0.5 -> 1 - 1 = 0: the tie can only be cut above
    assert choose_threshold(scores, is_defect, "youden") == 0.9


def test_a_good_image_above_every_defect_gives_the_cut_that_flags_nothing():
    scores, is_defect = np.array([0.2, 0.95]), np.array([True, False])
    assert choose_threshold(scores, is_defect, "fpr:0.0") == 1.0
    assert confusion(scores, is_defect, 1.0)["fp"] == 0


@pytest.mark.parametrize("labels", [[False] * 4, [True] * 4])
def test_validation_with_one_class_falls_back_and_says_so(labels):
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    assert choose_threshold(scores, np.array(labels), "youden") is None
    table = policy_table(scores, labels, ["youden", "recall:1.0"], n_resamples=10)
    for entry in table.values():
        assert entry["threshold"] == FALLBACK_THRESHOLD
        assert entry["fallback"] is True and entry["bootstrap"] is None


def test_the_table_counts_validation_and_test_at_each_threshold():
    table = policy_table(
        SCORES,
        IS_DEFECT,
        ["recall:1.0", "fpr:0.0"],
        test=([0.5, 0.75], [False, True]),
        n_resamples=0,
    )
    assert {k: table["recall:1.0"]["val"][k] for k in ("tp", "fp", "tn", "fn")} == {
        "tp": 3, "fp": 2, "tn": 4, "fn": 0,
    }  # fmt: skip
    assert (table["recall:1.0"]["test"]["fp"], table["recall:1.0"]["test"]["tp"]) == (1, 1)
    assert (table["fpr:0.0"]["test"]["fp"], table["fpr:0.0"]["test"]["tp"]) == (0, 1)
    assert table["recall:1.0"]["fallback"] is False


def test_bootstrap_counts_only_resamples_that_can_choose():
    """One defect among ten images: about (9/10)^10 = 35 % of resamples hold no defect."""
    scores = np.linspace(0.05, 0.5, 10)
    is_defect = np.arange(10) == 9
    table = policy_table(scores, is_defect, ["youden"], n_resamples=400, seed=1)
    boot = table["youden"]["bootstrap"]
    assert 200 < boot["n_resamples"] < 320
    assert boot["threshold"] == [0.5, 0.5]  # every resample that holds the defect cuts at it
    again = policy_table(scores, is_defect, ["youden"], n_resamples=400, seed=1)
    assert again["youden"]["bootstrap"] == boot


@pytest.mark.parametrize("text", ["recall", "recall:1.5", "fpr:-0.1", "f1", "youden:0.3", ""])
def test_unknown_policies_name_the_key_and_the_forms(text):
    with pytest.raises(PolicyError, match=r"threshold_policy=.*use youden, max_f1, recall:<r>"):
        parse_policy(text)


def test_policy_names_are_canonical():
    assert [parse_policy(t).name for t in ("recall:1", "recall:1.0", "fpr:.05")] == [
        "recall:1.0",
        "recall:1.0",
        "fpr:0.05",
    ]

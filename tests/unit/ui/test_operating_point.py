"""The page's operating point: counts at a threshold, the ROC, policies in words."""

from __future__ import annotations

import math

import pytest

from anomaly_vit.ui.counts import confusion_at, roc_points
from anomaly_vit.ui.policies import policy_choices, policy_words

SCORES = [0.9, 0.7, 0.7, 0.4, 0.2, 0.1]
DEFECT = [True, True, False, True, False, False]


def test_counts_call_a_score_equal_to_the_threshold_a_defect():
    c = confusion_at(SCORES, DEFECT, 0.7)
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 1, 2, 1)
    assert c.recall == pytest.approx(2 / 3)
    assert c.false_alarm_rate == pytest.approx(1 / 3)
    c = confusion_at(SCORES, DEFECT, 0.70001)
    assert (c.tp, c.fp, c.tn, c.fn) == (1, 0, 3, 2)


def test_counts_without_defects_have_no_recall():
    c = confusion_at([0.2, 0.8], [False, False], 0.5)
    assert (c.tp, c.fp, c.tn, c.fn) == (0, 1, 1, 0)
    assert math.isnan(c.recall)


def test_counts_refuse_scores_and_labels_of_different_lengths():
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        confusion_at([0.1, 0.2, 0.3], [True, False], 0.5)


def test_roc_points_step_through_every_distinct_score():
    points = roc_points(SCORES, DEFECT)
    # thresholds 0.9, 0.7 (a tie of a defect and a good photo), 0.4, 0.2, 0.1
    assert points == [
        (0.0, 0.0),
        (0.0, pytest.approx(1 / 3)),
        (pytest.approx(1 / 3), pytest.approx(2 / 3)),
        (pytest.approx(1 / 3), 1.0),
        (pytest.approx(2 / 3), 1.0),
        (1.0, 1.0),
    ]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("recall:1.0", "no escapes on validation"),
        ("recall:0.95", "catches ≥ 95 % of validation defects"),
        ("fpr:0.01", "≤ 1 % false alarms on validation"),
        ("fpr:0.05", "≤ 5 % false alarms on validation"),
        ("max_f1", "best F1 on validation"),
        ("manual", "set by hand"),
        ("my_policy", "my_policy"),
    ],
)
def test_policies_are_named_in_words(name, words):
    assert policy_words(name) == words


def test_policy_choices_carry_the_stored_name_and_threshold():
    stored = {"recall:1.0": {"threshold": 0.123456}, "youden": {"threshold": 0.5}}
    choices = policy_choices(stored, "youden", 0.5)
    assert choices[0] == ("no escapes on validation (recall:1.0, threshold 0.1235)", "recall:1.0")
    assert [value for _, value in choices] == ["recall:1.0", "youden"]
    # a starting point that is no stored policy is offered too
    assert policy_choices(stored, "manual", 0.42)[-1] == (
        "set by hand (manual, threshold 0.4200)",
        "manual",
    )

"""Cross-validation folds: by item, stratified by label, seeded; a fold's split; bad cv.folds."""

from __future__ import annotations

from collections import Counter

import pytest

from anomaly_vit.data.split import check_folds, fold_items, fold_split

LABELS = {"good": 23, "crack": 7, "stain": 5}


def _labels(n_per_label: dict[str, int]) -> dict[str, str]:
    return {f"{c}_{i:03d}": c for c, n in n_per_label.items() for i in range(n)}


def test_every_item_is_in_one_fold_and_each_label_spreads_evenly():
    labels = _labels(LABELS)
    folds = fold_items(labels, 5, seed=3)
    assert set(folds) == set(labels) and set(folds.values()) == set(range(5))
    for label, n in LABELS.items():
        per_fold = Counter(folds[i] for i, c in labels.items() if c == label)
        assert sum(per_fold.values()) == n
        assert max(per_fold.values()) - min(per_fold.get(k, 0) for k in range(5)) <= 1, label
    totals = Counter(folds.values())
    assert max(totals.values()) - min(totals.values()) <= 1
    defects = Counter(folds[i] for i, c in labels.items() if c != "good")
    assert sorted(defects.values()) == [2, 2, 2, 3, 3]  # 12 defective items over 5 folds


def test_folds_are_seeded_and_do_not_depend_on_the_order_of_items():
    labels = _labels(LABELS)
    reversed_labels = dict(reversed(list(labels.items())))
    assert fold_items(labels, 5, seed=1) == fold_items(reversed_labels, 5, seed=1)
    assert fold_items(labels, 5, seed=1) != fold_items(labels, 5, seed=2)


def test_a_fold_tests_its_items_and_carves_validation_from_the_others_by_label():
    labels = _labels({"good": 40, "crack": 20})
    folds = fold_items(labels, 4, seed=0)
    split = fold_split(folds, labels, fold=2, val_share=0.25, seed=0)
    assert {i for i, s in split.items() if s == "test"} == {i for i, k in folds.items() if k == 2}
    rest = [i for i, k in folds.items() if k != 2]
    for label, n in (("good", 30), ("crack", 15)):
        val = [i for i in rest if labels[i] == label and split[i] == "val"]
        assert len(val) == round(0.25 * n)  # stratified: a quarter of each label's rest
    assert Counter(split.values()) == {"train": 33, "test": 15, "val": 12}


@pytest.mark.parametrize("folds", [1, 0, "5", True])
def test_a_bad_fold_count_names_the_key(folds):
    with pytest.raises(ValueError, match=r"^cv\.folds=.*must be an integer >= 2"):
        check_folds(_labels(LABELS), folds, "good")


def test_more_folds_than_defective_items_is_refused_with_the_count():
    labels = _labels({"good": 30, "crack": 3, "stain": 1})
    assert check_folds(labels, 4, "good") == 4
    with pytest.raises(ValueError, match=r"cv\.folds=5 is more than the 4 defective item"):
        check_folds(labels, 5, "good")

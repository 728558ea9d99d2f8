"""Items, not files, are split; per class, seeded, with the configured ratios."""

from collections import Counter

import pytest

from anomaly_vit.data.split import split_items


def _labels(n_per_class):
    return {f"{c}_{i:03d}": c for c, n in n_per_class.items() for i in range(n)}


def test_ratios_are_met_per_class_and_every_item_gets_one_split():
    labels = _labels({"good": 100, "scratch": 50, "stain": 20})
    split = split_items(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    assert set(split) == set(labels)
    for cls, n in (("good", 100), ("scratch", 50), ("stain", 20)):
        counts = Counter(split[i] for i, c in labels.items() if c == cls)
        assert counts["val"] == round(0.2 * n) and counts["test"] == round(0.2 * n)
        assert counts["train"] == n - 2 * round(0.2 * n)


def test_seeded_and_order_independent():
    labels = _labels({"good": 30, "crack": 30})
    a = split_items(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    b = split_items(
        dict(reversed(list(labels.items()))), {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1
    )
    c = split_items(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=2)
    assert a == b
    assert a != c


def test_small_classes_still_reach_val_and_test():
    split = split_items(_labels({"rare": 3}), {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert sorted(split.values()) == ["test", "train", "val"]


@pytest.mark.parametrize(
    "ratios",
    [
        {"train": 0.5, "val": 0.2, "test": 0.2},
        {"train": 1.2, "val": -0.2},
        {"train": 0.6, "valid": 0.4},
    ],
)
def test_bad_ratios_name_the_key(ratios):
    with pytest.raises(ValueError, match="data.split"):
        split_items(_labels({"good": 5}), ratios, seed=0)

"""Split physical items (never files) into train/val/test, stratified by class and seeded."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Collection, Mapping
from pathlib import Path

SPLITS = ("train", "val", "test")


def check_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """Validate `data.split` ratios: keys train/val/test, non-negative, summing to 1."""
    unknown = set(ratios) - set(SPLITS)
    if unknown:
        raise ValueError(f"data.split has unknown keys {sorted(unknown)}; use {list(SPLITS)}.")
    values = {name: float(ratios.get(name, 0.0)) for name in SPLITS}
    if any(v < 0 for v in values.values()) or abs(sum(values.values()) - 1.0) > 1e-6:
        raise ValueError(
            f"data.split ratios must be >= 0 and sum to 1, got {values}; e.g. "
            "data.split.train=0.6 data.split.val=0.2 data.split.test=0.2."
        )
    return values


def split_items(
    label_of_item: Mapping[str, str], ratios: Mapping[str, float], seed: int
) -> dict[str, str]:
    """Assign each item_id to a split, per class, so every class is in every split it can be.

    Within a class the items are shuffled with `seed`; val and test get round(n * ratio) items
    (at least one each when the class has three or more items and the ratio is positive), train
    the rest. The result does not depend on the order of `label_of_item`.
    """
    values = check_ratios(ratios)
    items_of_class: dict[str, list[str]] = defaultdict(list)
    for item_id, label in label_of_item.items():
        items_of_class[label].append(item_id)
    split_of_item: dict[str, str] = {}
    for label in sorted(items_of_class):
        items = sorted(items_of_class[label])
        random.Random(f"{seed}:{label}").shuffle(items)
        n = len(items)
        counts = {}
        for name in ("val", "test"):
            count = round(n * values[name])
            if values[name] > 0 and n >= 3:
                count = max(count, 1)
            counts[name] = count
        n_val, n_test = counts["val"], counts["test"]
        for i, item_id in enumerate(items):
            if i < n_val:
                split_of_item[item_id] = "val"
            elif i < n_val + n_test:
                split_of_item[item_id] = "test"
            else:
                split_of_item[item_id] = "train"
    return split_of_item


def read_split_csv(path: str | Path, sources: Collection[str]) -> dict[str, str]:
    """item_id -> split of a run's split.csv, for the rows of `sources` (the real ones); items
    the run left "unused" (data.real_fraction) stay unused."""
    with Path(path).open(newline="") as handle:
        return {
            row["item_id"]: row["split"]
            for row in csv.DictReader(handle)
            if row["source"] in sources and row["split"] in (*SPLITS, "unused")
        }


def follow_recorded_split(
    split_now: Mapping[str, str], recorded: Mapping[str, str]
) -> tuple[dict[str, str], list[str], list[str]]:
    """Keep the split a run recorded for the items it knew: (split, appeared, disappeared).

    `split_now` is the split derived from the data as it is now; a training item must never
    become a test item because other items were added or removed. Items the run did not know
    (appeared) are left out ("unused"); recorded items no longer in the data are listed.
    """
    split = {item: recorded.get(item, "unused") for item in split_now}
    appeared = sorted(item for item in split_now if item not in recorded)
    disappeared = sorted(item for item in recorded if item not in split_now)
    return split, appeared, disappeared


# ------------------------------------------------------------------------ k-fold cross-validation
def check_folds(label_of_item: Mapping[str, str], folds: int, good_class: str) -> int:
    """`cv.folds` as an int: at least 2, and at most the number of defective items (every fold
    must hold a defective item, or its AUROC is undefined)."""
    n_defect = sum(1 for label in label_of_item.values() if label != good_class)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(
            f"cv.folds={folds!r}: must be an integer >= 2 (each fold tests one k-th of the items "
            "and trains on the rest), e.g. cv.folds=5."
        )
    if folds > n_defect:
        raise ValueError(
            f"cv.folds={folds} is more than the {n_defect} defective item(s) of the data "
            f"({len(label_of_item)} items): a fold would test no defect; use cv.folds<={n_defect} "
            "or add defective items."
        )
    return folds


def fold_items(label_of_item: Mapping[str, str], folds: int, seed: int) -> dict[str, int]:
    """Assign each item_id to one of `folds` folds, stratified by label and seeded.

    Items (never files) are the unit, so every image of an item is in one fold. Per label the
    items are shuffled with `seed` and dealt round-robin, the deal carrying on from one label
    to the next (labels in sorted order): each fold gets every label's count to within one, and
    the total too. The result does not depend on the order of `label_of_item`.
    """
    items_of_label: dict[str, list[str]] = defaultdict(list)
    for item_id, label in label_of_item.items():
        items_of_label[label].append(item_id)
    fold_of_item: dict[str, int] = {}
    turn = 0
    for label in sorted(items_of_label):
        items = sorted(items_of_label[label])
        random.Random(f"{seed}:fold:{label}").shuffle(items)
        for item_id in items:
            fold_of_item[item_id] = turn % folds
            turn += 1
    return fold_of_item


def fold_split(
    fold_of_item: Mapping[str, int],
    label_of_item: Mapping[str, str],
    fold: int,
    val_share: float,
    seed: int,
) -> dict[str, str]:
    """item_id -> split for cross-validation fold `fold`: its items are the test split; val is
    carved from the other folds' items by item, stratified (`split_items`, share `val_share`),
    and the rest trains."""
    rest = {item: label_of_item[item] for item, k in fold_of_item.items() if k != fold}
    split = split_items(rest, {"train": 1.0 - val_share, "val": val_share, "test": 0.0}, seed)
    split.update({item: "test" for item, k in fold_of_item.items() if k == fold})
    return split

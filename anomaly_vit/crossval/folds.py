"""The folds of a cv folder: which item tests in which fold, each fold's split file, and which
folds are finished.

A cv folder (``outputs/cv/<time>_<name>/``) holds::

    folds.csv            item_id, source, label, fold: the assignment, written once and followed
                         on every later call (resume, cv.only, another process)
    cv_config.json       arm, data, model, seeds, overrides of the first call (cv.aggregate
                         reads it; a later call must train the same arm)
    splits/fold_<k>.csv  item_id, split, source: fold k's split (train.yaml `split_csv`)
    fold_<k>/            fold k's run dir; finished when cv_fold.json and oof_scores.csv exist
    oof_scores.csv, cv_summary.json, cv.png      the pooled result (anomaly_vit.crossval.pooled)
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anomaly_vit.data.scarce import keep_real_share
from anomaly_vit.data.split import check_folds, fold_items, fold_split
from anomaly_vit.rundir import read_json, write_csv

log = logging.getLogger(__name__)

FOLDS_CSV = "folds.csv"
SPLITS_DIR = "splits"
FOLD_DIR = "fold_{fold}"
FOLD_JSON = "cv_fold.json"  # in a fold dir: its row of cv_summary.json "folds" (written last)
OOF_CSV = "oof_scores.csv"  # in a fold dir (its test photos) and in the cv dir (all of them)
CV_SUMMARY_JSON = "cv_summary.json"  # the pooled result, in the cv dir
CV_PNG = "cv.png"
CV_CONFIG_JSON = "cv_config.json"  # the arm, data, model, seeds and overrides of the first run


def fold_dir(cv_dir: Path, fold: int) -> Path:
    return cv_dir / FOLD_DIR.format(fold=fold)


def is_finished(cv_dir: Path, fold: int) -> bool:
    """A fold is finished when its row and its out-of-fold scores are written."""
    folder = fold_dir(cv_dir, fold)
    return (folder / FOLD_JSON).is_file() and (folder / OOF_CSV).is_file()


def finished_folds(cv_dir: Path, folds: int) -> list[int]:
    return [k for k in range(folds) if is_finished(cv_dir, k)]


def read_fold_row(cv_dir: Path, fold: int) -> dict[str, Any]:
    return read_json(fold_dir(cv_dir, fold) / FOLD_JSON)


def check_only(only: Any, folds: int) -> list[int]:
    """`cv.only` (null: every fold) as a sorted list of fold numbers in [0, folds)."""
    if only is None:
        return list(range(folds))
    wanted = [only] if isinstance(only, int) else list(only)
    bad = [k for k in wanted if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < folds]
    if bad or not wanted:
        raise ValueError(
            f"cv.only={only!r}: give fold numbers between 0 and {folds - 1} (cv.folds={folds}), "
            "e.g. cv.only=[0,2], or null for every fold."
        )
    return sorted(set(wanted))


@dataclass
class FoldPlan:
    """The fold of every real item and the split of every fold."""

    folds: int
    fold_of_item: dict[str, int]
    label_of_item: dict[str, str]
    source_of_item: dict[str, str]
    good_class: str
    val_share: float
    seed: int
    real_fraction: float = 1.0

    @classmethod
    def from_index(
        cls,
        index: Any,
        real_sources: list[str],
        folds: Any,
        seed: int,
        val_share: float,
        real_fraction: float = 1.0,
    ) -> FoldPlan:
        """Folds of the real items of a `DataIndex` (after the checks of `check_folds`)."""
        if not 0.0 < float(val_share) < 1.0:
            raise ValueError(
                f"cv.val_share={val_share}: must be in (0, 1), the share of each fold's training "
                "items carved out for validation (e.g. 0.25)."
            )
        labels = dict(index.label_of_item)
        folds = check_folds(labels, folds, index.good_class)
        source_of_item = {r.item_id: name for name in real_sources for r in index.records[name]}
        return cls(
            folds=folds,
            fold_of_item=fold_items(labels, folds, seed),
            label_of_item=labels,
            source_of_item=source_of_item,
            good_class=index.good_class,
            val_share=float(val_share),
            seed=int(seed),
            real_fraction=float(real_fraction),
        )

    def follow(self, recorded: dict[str, int]) -> None:
        """Keep the folds a cv folder recorded: items it does not know are left out (a photo
        must never test in a fold whose model trained on it); changes are logged."""
        appeared = sorted(set(self.fold_of_item) - set(recorded))
        gone = sorted(set(recorded) - set(self.fold_of_item))
        if appeared:
            log.warning(
                "cv: %d item(s) are not in %s (added since the folds were drawn): left out of "
                "every fold: %s", len(appeared), FOLDS_CSV, ", ".join(appeared[:10]),
            )  # fmt: skip
        if gone:
            log.warning(
                "cv: %d item(s) of %s are no longer in the data: %s",
                len(gone), FOLDS_CSV, ", ".join(gone[:10]),
            )  # fmt: skip
        self.fold_of_item = {i: k for i, k in recorded.items() if i in self.fold_of_item}

    def split(self, fold: int) -> dict[str, str]:
        """item_id -> train | val | test | unused of fold `fold` (`data.real_fraction` applied
        to its training items, as a plain run does)."""
        labels = {i: self.label_of_item[i] for i in self.fold_of_item}
        split = fold_split(self.fold_of_item, labels, fold, self.val_share, self.seed)
        return keep_real_share(split, labels, self.real_fraction, self.seed)

    def val_defects(self, fold: int) -> int:
        """Defective items in fold `fold`'s validation part."""
        split = self.split(fold)
        return sum(
            1
            for item, name in split.items()
            if name == "val" and self.label_of_item[item] != self.good_class
        )

    def counts(self) -> list[dict[str, int]]:
        """Items per label in each fold."""
        return [
            dict(Counter(self.label_of_item[i] for i, k in self.fold_of_item.items() if k == f))
            for f in range(self.folds)
        ]

    # ------------------------------------------------------------------------------- files
    def write_folds_csv(self, cv_dir: Path) -> Path:
        rows = sorted(self.fold_of_item.items(), key=lambda pair: (pair[1], pair[0]))
        return write_csv(
            cv_dir / FOLDS_CSV,
            ("item_id", "source", "label", "fold"),
            ([i, self.source_of_item.get(i, ""), self.label_of_item[i], k] for i, k in rows),
        )

    def write_split_csv(self, cv_dir: Path, fold: int) -> Path:
        """splits/fold_<k>.csv in the columns train.yaml's `split_csv` reads."""
        split = self.split(fold)
        return write_csv(
            cv_dir / SPLITS_DIR / f"fold_{fold}.csv",
            ("item_id", "split", "source"),
            ([i, split[i], self.source_of_item.get(i, "")] for i in sorted(split)),
        )


def read_folds_csv(path: Path) -> dict[str, int]:
    """item_id -> fold of a cv folder's folds.csv."""
    with path.open(newline="") as handle:
        return {row["item_id"]: int(row["fold"]) for row in csv.DictReader(handle)}

"""The item index: every source scanned, items split train/val/test, the class list fixed.

Building it is cheap (no pixels are decoded), so `classes` is known before the model is built.
Primary sources are scanned first and split by physical item; derived sources (composites,
painted defects) are scanned after, from their base's records and the split.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from anomaly_vit.data.bad_images import BadImages
from anomaly_vit.data.labels import (
    Task,
    apply_task,
    check_synthetic_classes,
    labels_differing_by_case,
)
from anomaly_vit.data.records import Record, Source, SourceContext
from anomaly_vit.data.scarce import UNUSED, keep_real_share
from anomaly_vit.data.split import SPLITS, follow_recorded_split, split_items
from anomaly_vit.rundir import write_csv

log = logging.getLogger(__name__)

# UNUSED: the split of an item no split uses (a training item left out by data.real_fraction,
# a synthetic-only item of a weight-0 source)
SPLIT_COLUMNS = ("item_id", "split", "source", "view", "label", "path", "mask_path")
MAX_ITEMS_LOGGED = 10  # item ids named in a split-change warning


def check_sources(sources: Mapping[str, object], eval_sources: Sequence[str] | None) -> None:
    """Every `data.sources` entry must be a source (a `_target_` was instantiated), and
    `eval_sources` must name sources: a typo in an override names a source that does not exist."""
    real = sorted(n for n, s in sources.items() if callable(getattr(s, "scan", None)))
    for name, source in sources.items():
        if name not in real:
            raise ValueError(
                f"data.sources.{name} is not an image source (no _target_, got {source!r}): a "
                f"weight or option must name one of the configured sources {real}; to add a "
                f"source give data.sources.{name}._target_."
            )
    unknown = [n for n in eval_sources or [] if n not in sources]
    if unknown:
        raise ValueError(
            f"data.eval_sources names unknown source(s) {unknown}; configured sources: {real}."
        )


def is_derived(source: object) -> bool:
    """A source built from another source's records (it names a `base`)."""
    return bool(getattr(source, "base", None))


class DataIndex:
    """Records of every source, the split of every item and the class list."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        split_ratios: Mapping[str, float],
        seed: int,
        good_class: str,
        classes: Sequence[str] | None,
        bad: BadImages,
        task: Task = Task.MULTICLASS,
        defect_class: str = "defect",
        synthetic_fraction: float | None = None,
        allow_synthetic_only_classes: bool = False,
        recorded_split: Mapping[str, str] | None = None,
        real_fraction: float = 1.0,
    ) -> None:
        """`recorded_split` (item_id -> split, a run's split.csv; eval and resume) is followed
        instead of re-deriving the split from the data as it is now (it already holds the
        `real_fraction` choice: unused items stay unused)."""
        self.sources = dict(sources)
        self.records: dict[str, list[Record]] = {}
        self.split_of_item: dict[str, str] = {}
        self.good_class = good_class
        context = SourceContext(
            records=self.records, split_of_item={}, sources=self.sources, seed=seed
        )
        primary = [n for n, s in self.sources.items() if not is_derived(s)]
        derived = [n for n in self.sources if n not in primary]
        for source_name in derived:
            base = self.sources[source_name].base
            if base not in self.sources:
                raise ValueError(
                    f"data.sources.{source_name}.base={base!r} names no source; "
                    f"known sources: {sorted(self.sources)}."
                )
        for source_name in primary:
            self.records[source_name] = self.sources[source_name].scan(context)
            for path, reason in getattr(self.sources[source_name], "bad_files", []):
                bad.bad_file_of_scan(path, reason, source_name)
        label_of_item: dict[str, str] = {}
        for source_name in primary:
            source = self.sources[source_name]
            for record in self.records[source_name]:
                if source.synthetic:
                    self.split_of_item.setdefault(record.item_id, "train")
                elif record.item_id not in label_of_item or record.label != good_class:
                    label_of_item[record.item_id] = record.label
        # item_id -> label of the real primary items (a defect label wins over good_class): what
        # the split stratifies by (and cross-validation's folds, anomaly_vit.crossval)
        self.label_of_item = label_of_item
        derived_split = split_items(label_of_item, split_ratios, seed)
        derived_split = keep_real_share(derived_split, label_of_item, real_fraction, seed)
        self.split_changes: dict[str, list[str]] = {}  # items that appeared / disappeared since
        if recorded_split is not None:
            derived_split = self._follow_recorded_split(derived_split, recorded_split)
        self.split_of_item.update(derived_split)
        context.split_of_item = self.split_of_item
        for source_name in derived:
            self.records[source_name] = self.sources[source_name].scan(context)
        # labels as the files say, for the report (binary runs keep the per-class picture)
        self.original_labels = {
            name: dict(Counter(r.label for r in recs)) for name, recs in self.records.items()
        }
        self.labels_differing_by_case = labels_differing_by_case(
            label for counts in self.original_labels.values() for label in counts
        )
        for group in self.labels_differing_by_case:
            log.warning(
                "labels %s differ only by case, so they are %d different classes (good_class "
                "is %r): rename them to one spelling if they are one class",
                group, len(group), good_class,
            )  # fmt: skip
        self.records.update(apply_task(self.records, task, good_class, defect_class))
        used = mix_weights(self.sources, synthetic_fraction)  # after the scans: their errors first
        self.synthetic_only_classes = check_synthetic_classes(
            self.records, self.sources, used, allow_synthetic_only_classes
        )
        self.classes = self._resolve_classes(classes, used)

    def _follow_recorded_split(
        self, derived_split: dict[str, str], recorded_split: Mapping[str, str]
    ) -> dict[str, str]:
        """The recorded split for the items it knows; new items unused; changes logged."""
        split, appeared, disappeared = follow_recorded_split(derived_split, recorded_split)
        self.split_changes = {"appeared": appeared, "disappeared": disappeared}
        for what, items, effect in (
            ("appeared", appeared, "left out (not in the run's split)"),
            ("disappeared", disappeared, "no longer in the data"),
        ):
            if items:
                shown = ", ".join(items[:MAX_ITEMS_LOGGED]) + (
                    " ..." if len(items) > MAX_ITEMS_LOGGED else ""
                )
                log.warning(
                    "split: %d item(s) %s since the run: %s: %s", len(items), what, effect, shown
                )
        return split

    def _resolve_classes(
        self, requested: Sequence[str] | None, weights: Mapping[str, float]
    ) -> list[str]:
        """The requested classes, else the labels of the real sources and of the synthetic
        sources in use (a synthetic source with mix weight 0 adds no class)."""
        labels = {
            r.label
            for n, recs in self.records.items()
            if not self.sources[n].synthetic or weights.get(n, 0.0) > 0
            for r in recs
        }
        if requested:
            unknown = labels - set(requested)
            if unknown:
                raise ValueError(
                    f"labels {sorted(unknown)} are not in data.classes={list(requested)}; "
                    "add them to data.classes or remove those images."
                )
            return list(requested)
        ordered = sorted(labels - {self.good_class})
        return ([self.good_class] if self.good_class in labels else []) + ordered

    def mix_weights(self, synthetic_fraction: float | None) -> dict[str, float]:
        """Effective weight of each source: `synthetic_fraction` splits real vs synthetic share."""
        return mix_weights(self.sources, synthetic_fraction)

    def records_of_splits(
        self, weights: Mapping[str, float], eval_sources: Sequence[str] | None
    ) -> dict[str, list[Record]]:
        """Records read per split: train from every source with a weight > 0, val and test from
        `eval_sources` (default: every real source)."""
        eval_names = eval_sources or [n for n, s in self.sources.items() if not s.synthetic]
        of_split = {}
        for split in SPLITS:
            names = [n for n in self.sources if weights[n] > 0] if split == "train" else eval_names
            of_split[split] = [
                r
                for n in names
                for r in self.records[n]
                if self.split_of_item.get(r.item_id) == split
            ]
        return of_split

    def write_split_csv(self, path: Path) -> None:
        """One row per record: its item, split, source, view, label and files."""
        write_csv(
            path,
            SPLIT_COLUMNS,
            (
                [r.item_id, self.split_of_item.get(r.item_id, UNUSED), name, r.view, r.label,
                 r.path, r.mask_path or ""]
                for name, records in self.records.items()
                for r in records
            ),
        )  # fmt: skip


def mix_weights(
    sources: Mapping[str, Source], synthetic_fraction: float | None
) -> dict[str, float]:
    """Effective weight of each source: `synthetic_fraction` splits real vs synthetic share."""
    weights = {name: float(source.weight) for name, source in sources.items()}
    for name, weight in weights.items():
        if weight < 0:
            raise ValueError(f"data.sources.{name}.weight must be >= 0, got {weight}.")
    if weights and sum(weights.values()) <= 0:
        raise ValueError(
            f"every mix weight is 0 ({', '.join(f'data.sources.{n}.weight' for n in weights)}"
            "): give at least one source a weight > 0."
        )
    if synthetic_fraction is None:
        return weights
    fraction = float(synthetic_fraction)
    effective = {}
    for synthetic, share in ((False, 1.0 - fraction), (True, fraction)):
        group = {n: w for n, w in weights.items() if sources[n].synthetic == synthetic}
        total = sum(group.values())
        if share > 0 and total <= 0:
            kind = "synthetic" if synthetic else "real"
            raise ValueError(
                f"data.synthetic_fraction={fraction} asks for {kind} images but no {kind} "
                f"source has a weight > 0 (sources: {sorted(weights)})."
            )
        effective.update({n: (share * w / total if total > 0 else 0.0) for n, w in group.items()})
    return effective

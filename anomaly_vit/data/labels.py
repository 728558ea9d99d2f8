"""What the model is asked to tell apart: the task (binary or multiclass) and class balance.

`binary` maps every class but the good one to one defect class (what an inspection line
decides); the original labels stay in the data report. `balance` evens out rare classes:
class-balanced draws inside each source's mix quota (`sampler`), a class-weighted loss
(`loss`), or neither; `auto` picks the sampler when the real training classes are imbalanced.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from anomaly_vit.data.records import Record, Source
from anomaly_vit.errors import DataError


class Task(StrEnum):
    """`data.task`."""

    BINARY = "binary"
    MULTICLASS = "multiclass"


class Balance(StrEnum):
    """`data.balance`."""

    AUTO = "auto"
    SAMPLER = "sampler"
    LOSS = "loss"
    NONE = "none"


def apply_task(
    records: Mapping[str, list[Record]], task: Task, good_class: str, defect_class: str
) -> dict[str, list[Record]]:
    """Records relabelled for `task`: binary maps every non-good label to `defect_class`."""
    if task is Task.MULTICLASS:
        return {name: list(recs) for name, recs in records.items()}
    return {
        name: [
            dataclasses.replace(r, label=task_label(r.label, task, good_class, defect_class))
            for r in recs
        ]
        for name, recs in records.items()
    }


def task_label(label: str, task: Task, good_class: str, defect_class: str) -> str:
    """The class a label of the files is for `task`: binary maps every non-good label to
    `defect_class`; multiclass keeps it."""
    if task is Task.BINARY and label != good_class:
        return defect_class
    return label


def check_synthetic_classes(
    records: Mapping[str, list[Record]],
    sources: Mapping[str, Source],
    weights: Mapping[str, float],
    allowed: bool,
) -> list[str]:
    """Labels that only synthetic sources in use have. An error unless `allowed`: a class the
    real images never show cannot be validated or tested, and usually means a synthetic
    source's `label` does not match the user's classes."""
    real = {r.label for n, recs in records.items() if not sources[n].synthetic for r in recs}
    only: dict[str, set[str]] = {}
    for name, recs in records.items():
        if sources[name].synthetic and weights.get(name, 0.0) > 0:
            for label in {r.label for r in recs} - real:
                only.setdefault(label, set()).add(name)
    if only and not allowed:
        names = sorted({n for ns in only.values() for n in ns})
        keys = ", ".join(f"data.sources.{n}.label" for n in names)
        raise DataError(
            f"classes {sorted(only)} appear only in synthetic source(s) {names}; the real images "
            f"have {sorted(real)}. Set {keys} to one of the real classes (data.task=binary maps "
            "every defect to 'defect'), or data.allow_synthetic_only_classes=true to train on them."
        )
    return sorted(only)


def resolve_balance(
    balance: Balance, counts: Mapping[str, int], imbalance_ratio: float
) -> tuple[Balance, str]:
    """The balance in force and why: `auto` turns on the sampler when the largest real training
    class outnumbers the smallest by more than `imbalance_ratio`."""
    present = {c: n for c, n in counts.items() if n > 0}
    ratio = max(present.values()) / min(present.values()) if present else 1.0
    said = f"real training classes {dict(sorted(present.items()))}, largest/smallest {ratio:.1f}"
    if balance is not Balance.AUTO:
        return balance, f"data.balance={balance.value}; {said}"
    if ratio > imbalance_ratio:
        return Balance.SAMPLER, (
            f"data.balance=auto chose class-balanced sampling: {said} > {imbalance_ratio}"
        )
    return Balance.NONE, f"data.balance=auto: classes balanced enough ({said} <= {imbalance_ratio})"


def inverse_frequency_weights(classes: Sequence[str], counts: Mapping[str, int]) -> list[float]:
    """Loss weight per class, n / (k * n_class): every class weighs the same in the loss, and the
    mean weight over the training images is 1 (the loss keeps its scale)."""
    present = [c for c in classes if counts.get(c, 0) > 0]
    total = sum(counts.get(c, 0) for c in present)
    return [total / (len(present) * counts[c]) if counts.get(c, 0) else 0.0 for c in classes]


def label_counts(records: Sequence[Record]) -> Counter:
    return Counter(r.label for r in records)


def labels_differing_by_case(labels: Iterable[str]) -> list[list[str]]:
    """Groups of labels that differ only by case (`Good`, `good`): two classes, likely one meant."""
    groups: dict[str, list[str]] = {}
    for label in sorted(set(labels)):
        groups.setdefault(label.casefold(), []).append(label)
    return [sorted(group) for _, group in sorted(groups.items()) if len(group) > 1]

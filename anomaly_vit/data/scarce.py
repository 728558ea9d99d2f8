"""The scarce-real keys: `data.real_fraction` (how many real training items) and `data.mix_mode`
(synthetic images instead of real ones, or on top of them).

- ``real_fraction`` in (0, 1]: per class, the training items are shuffled with the seed and the
  first ``round(n * real_fraction)`` (at least 1) are kept; the others become "unused" (listed so
  in split.csv). Val and test are untouched, and derived sources (painted, transplants, ...) see
  only the kept items, since they build from train items. The order depends on the seed only,
  so the items kept at 0.1 are among those kept at 0.25, 0.5 and 1.
- ``mix_mode: replace`` (default): an epoch has ``samples_per_epoch`` images (default: the real
  training images), ``synthetic_fraction`` of them synthetic, so synthetic images take the
  place of real ones.
- ``mix_mode: add``: the real part of an epoch keeps its full length ``R`` (``samples_per_epoch``,
  default the real training images) and synthetic images come on top, so that they are still
  ``synthetic_fraction`` of what the model sees: the epoch has
  ``R + round(R * f / (1 - f))`` images (f = 0.5 doubles it); f must be below 1.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from enum import StrEnum

from anomaly_vit.errors import ConfigError, enum_value

UNUSED = "unused"
TRAIN = "train"


class MixMode(StrEnum):
    REPLACE = "replace"
    ADD = "add"


def check_real_fraction(value: float | None) -> float:
    """`data.real_fraction` as a float in (0, 1] (null means 1)."""
    fraction = 1.0 if value is None else float(value)
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(
            f"data.real_fraction must be in (0, 1] (the share of real training items kept), "
            f"got {value}."
        )
    return fraction


def check_mix_mode(mode: str, synthetic_fraction: float | None) -> MixMode:
    """`data.mix_mode` as a `MixMode`; `add` needs a synthetic_fraction below 1."""
    result = enum_value(MixMode, mode, "data.mix_mode")
    if result is MixMode.ADD and (synthetic_fraction is None or float(synthetic_fraction) >= 1):
        raise ConfigError(
            f"data.mix_mode=add puts synthetic images on top of the real ones, so "
            f"data.synthetic_fraction must be a number in [0, 1), got {synthetic_fraction}; "
            f"use mix_mode=replace for synthetic-only epochs."
        )
    return result


def keep_real_share(
    split_of_item: Mapping[str, str],
    label_of_item: Mapping[str, str],
    fraction: float,
    seed: int,
) -> dict[str, str]:
    """The split with all but `fraction` of each class's training items set to "unused"."""
    if fraction >= 1.0:
        return dict(split_of_item)
    train_of_class: dict[str, list[str]] = defaultdict(list)
    for item, split in split_of_item.items():
        if split == TRAIN:
            train_of_class[label_of_item[item]].append(item)
    result = dict(split_of_item)
    for label, items in sorted(train_of_class.items()):
        items = sorted(items)
        random.Random(f"{seed}:real_fraction:{label}").shuffle(items)
        keep = max(1, round(len(items) * fraction))
        for item in items[keep:]:
            result[item] = UNUSED
    return result


def epoch_length(real_epoch: int, synthetic_fraction: float | None, mode: MixMode) -> int:
    """Images per epoch: `real_epoch` (replace), or with the synthetic images on top (add)."""
    if mode is MixMode.REPLACE or not synthetic_fraction:
        return real_epoch
    f = float(synthetic_fraction)
    return real_epoch + round(real_epoch * f / (1.0 - f))

"""Timings of the interleaved epochs (pipeline and plain loop) and their medians."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from anomaly_vit.bench.report import median, safe_ratio

FETCH_ACTION = "[_TrainingEpochLoop].train_dataloader_next"
VALIDATION_PREFIX = "(validation) "
# an epoch slower than this factor x the fastest of its kind was disturbed by other work
NOISY_SPREAD = 1.25


@dataclass
class EpochTiming:
    """One epoch of the pipeline fit (perf_counter seconds) and the plain epoch run before it."""

    epoch: int  # 0-based epoch of this fit
    global_epoch: int
    role: str  # warmup, profile or measure
    start: float
    end: float = math.nan
    validation_seconds: float = 0.0
    images: int = 0
    steps: int = 0
    gap_seconds: float = 0.0  # from one step's end (or the epoch's start) to the next step's start
    plain_seconds: float = math.nan
    plain_images: int = 0
    actions: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def train_seconds(self) -> float:
        """The epoch without its validation: steps, data, epoch-end work."""
        return self.end - self.start - self.validation_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "global_epoch": self.global_epoch, "role": self.role,
            "train_seconds": self.train_seconds, "validation_seconds": self.validation_seconds,
            "images": self.images, "steps": self.steps, "gap_seconds": self.gap_seconds,
            "fetch_seconds": self.actions.get(FETCH_ACTION, 0.0),
            "data_seconds": data_seconds(self.actions),
            "plain_seconds": self.plain_seconds, "plain_images": self.plain_images,
        }  # fmt: skip


def undisturbed(measured: list[EpochTiming]) -> list[EpochTiming]:
    """The pairs whose pipeline epoch AND plain epoch both ran within `NOISY_SPREAD` of the
    fastest epoch of their kind. Another process on a shared machine only ever adds time, and
    it hits one epoch of a pair, not both: such a pair says how busy the machine was, not how
    fast the pipeline is."""
    fastest_pipe = min((e.train_seconds for e in measured if e.train_seconds > 0), default=math.nan)
    fastest_plain = min(
        (e.plain_seconds for e in measured if e.plain_seconds > 0), default=math.nan
    )
    return [e for e in measured
            if 0 < e.train_seconds <= NOISY_SPREAD * fastest_pipe
            and 0 < e.plain_seconds <= NOISY_SPREAD * fastest_plain]  # fmt: skip


def summarize(measured: list[EpochTiming], flops_per_image: float) -> dict[str, Any]:
    """Throughputs, ratios and shares as medians over the undisturbed pairs of epochs (over all
    measured epochs when none is); the all-epochs ratios are kept beside them."""
    clean = undisturbed(measured)
    used = clean or measured

    def rates(epochs: list[EpochTiming]) -> tuple[list[float], list[float], list[float]]:
        pipe = [e.images / e.train_seconds for e in epochs if e.train_seconds > 0]
        plain = [e.plain_images / e.plain_seconds for e in epochs if e.plain_seconds > 0]
        paired = [
            safe_ratio(e.images / e.train_seconds, e.plain_images / e.plain_seconds)
            for e in epochs
            if e.train_seconds > 0 and e.plain_seconds > 0
        ]
        return pipe, plain, paired

    pipe, plain, paired = rates(used)
    all_pipe, all_plain, all_paired = rates(measured)
    epoch_end = [
        sum(v for k, v in e.actions.items() if k.endswith(".on_train_epoch_end")) for e in used
    ]
    return {
        "pipeline_img_per_s": median(pipe),
        "plain_img_per_s": median(plain),
        "ratio_paired_median": median(paired),
        "ratio_of_medians": safe_ratio(median(pipe), median(plain)),
        "pairs_used": len(used),
        "pairs_measured": len(measured),
        "noisy": len(clean) < min(2, len(measured)),
        "paired_ratios": all_paired,
        "undisturbed": [e.global_epoch for e in clean],
        "ratio_paired_median_all": median(all_paired),
        # noise on a shared machine only ever adds time: the fastest epochs are the least disturbed
        "ratio_of_best": safe_ratio(max(all_pipe, default=math.nan), max(all_plain, default=math.nan)),
        "pipeline_epoch_seconds": median(e.train_seconds for e in used),
        "plain_epoch_seconds": median(e.plain_seconds for e in used),
        "validation_seconds": median(e.validation_seconds for e in used),
        "fetch_share": median(safe_ratio(data_seconds(e.actions), e.train_seconds) for e in used),
        "gap_share": median(safe_ratio(e.gap_seconds, e.train_seconds) for e in used),
        "epoch_end_seconds": median(epoch_end),
        "pipeline_flops_per_s": median(p * flops_per_image for p in pipe),
        "plain_flops_per_s": median(p * flops_per_image for p in plain),
    }  # fmt: skip


def data_seconds(actions: dict[str, float]) -> float:
    """Seconds of getting batches ready: the dataloader's `next` (decoding, per-image
    transforms) plus moving the batch to the device with its hooks (`on_after_batch_transfer`
    holds batched augmentation). `batch_to_device` holds the transfer hooks, so they are
    counted on their own only when it was not profiled."""
    transfer = [
        v
        for k, v in actions.items()
        if k.endswith(".batch_to_device") and k.startswith("[Strategy]")
    ]
    if not transfer:
        transfer = [
            v
            for k, v in actions.items()
            if k.endswith(("batch_transfer", ".transfer_batch_to_device"))
        ]
    return actions.get(FETCH_ACTION, 0.0) + sum(transfer)


def action_table(
    measured: list[EpochTiming], top: int = 15, validation: bool = False
) -> list[tuple[str, float, float]]:
    """(action, median seconds per epoch, share of the median pipeline epoch), largest first:
    the actions of the pipeline epoch, or with `validation` those of validation (which is not
    part of it). The whole-epoch and whole-batch actions are left out (they hold the others)."""
    names = {
        name
        for e in measured
        for name in e.actions
        if name.startswith(VALIDATION_PREFIX) == validation
    }
    names -= {"run_training_epoch", "run_training_batch"}
    epoch_seconds = median(e.train_seconds for e in measured)
    rows = [(name, median(e.actions.get(name, 0.0) for e in measured)) for name in names]
    rows.sort(key=lambda row: -row[1])
    return [
        (name.removeprefix(VALIDATION_PREFIX), seconds, safe_ratio(seconds, epoch_seconds))
        for name, seconds in rows[:top]
    ]

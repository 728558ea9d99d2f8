"""Config values that would end in a traceback deep inside Lightning, timm or torch: each gets
one line naming the key and what to do instead."""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from anomaly_vit.errors import ConfigError, DataError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_training_config(cfg: DictConfig) -> None:
    """Epoch count, learning rate, batch sizes and patch/image sizes of a training config."""
    max_epochs = cfg.trainer.get("max_epochs")
    if not _is_int(max_epochs) or max_epochs < 1:
        raise ConfigError(
            f"trainer.max_epochs={max_epochs}: set a whole number of epochs >= 1 (the learning "
            "rate schedule needs an end; a resumed or fine-tuned run counts its own epochs)."
        )
    lr = cfg.model.get("optimizer", {}).get("lr")
    if (
        isinstance(lr, bool)
        or not isinstance(lr, int | float)
        or not (math.isfinite(lr) and lr > 0)
    ):
        raise ConfigError(
            f"model.optimizer.lr={lr}: the learning rate must be a number > 0, e.g. 1e-3."
        )
    for key in ("batch_size", "eval_batch_size"):
        size = cfg.data.get(key)
        if (key == "batch_size" or size is not None) and (not _is_int(size) or size < 1):
            raise ConfigError(f"data.{key}={size}: a batch size must be a whole number >= 1.")
    net = cfg.model.get("net", {})
    for key in ("img_size", "patch_size"):
        value = net.get(key)
        if key == "img_size" and value == "auto":  # the datamodule measures it from the photos
            continue
        sides = list(value) if not isinstance(value, str) and hasattr(value, "__len__") else [value]
        if value is not None and not all(_is_int(side) and side >= 1 for side in sides):
            hint = " (or auto: sized from the training photos)" if key == "img_size" else ""
            raise ConfigError(
                f"model.net.{key}={value}: must be a whole number of pixels >= 1{hint}."
            )


def check_classes(classes: list[str]) -> None:
    """A classifier needs two classes or more (the good class and a defect class)."""
    if len(classes) < 2:
        raise DataError(
            f"the data has {len(classes)} class(es) {classes}: a defect classifier needs the good "
            "class and at least one defect class; check the data.sources roots (one folder per "
            "class) or the manifest's label column."
        )


def progress_bar_on(enable_progress_bar: bool, stream: TextIO | None = None) -> bool:
    """`trainer.enable_progress_bar`, honoured only when `stream` (stdout) is a terminal: a bar
    written to a file or pipe (a redirected run, a job log) leaves carriage-return frames."""
    stream = sys.stdout if stream is None else stream
    return bool(enable_progress_bar) and bool(getattr(stream, "isatty", lambda: False)())


def without_progress_bars(callbacks: list, enable_progress_bar: bool) -> list:
    """`callbacks` without progress bars when `trainer.enable_progress_bar=false` (Lightning
    refuses a progress-bar callback then)."""
    if enable_progress_bar:
        return callbacks
    return [callback for callback in callbacks if not isinstance(callback, ProgressBar)]

"""Checkpoint writing that never leaves a half-written file (`rundir.atomic_write`, durable)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from anomaly_vit.errors import STORAGE_ERRNOS, RunDirError, storage_message
from anomaly_vit.rundir import atomic_write

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """A process killed while saving leaves the previous checkpoint intact and loadable."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        """Write `.<name>.tmp` beside `path`, flush it to disk, then rename it over `path`.

        A save that fails part-way (an exception, a full disk) removes its temp file; a process
        killed part-way leaves only the hidden temp file, which the next save overwrites.
        """
        try:
            atomic_write(path, lambda handle: torch.save(checkpoint, handle), durable=True)
        except (OSError, RuntimeError) as error:
            storage = storage_error(error, path)
            if storage is None:
                raise
            # said at once: in the background writer the error surfaces only at the next save
            message = storage_message(storage, Path(path).parents[1])
            log.error("%s", message)
            raise RunDirError(message) from error


def storage_error(error: BaseException, path: str | Path) -> OSError | None:
    """The disk error behind a failed checkpoint write: an OSError of a full, read-only or
    forbidden disk, or torch's zip writer's RuntimeError ("file write failed"), which hides
    the errno (a full disk then)."""
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return error if error.filename else OSError(error.errno, error.strerror, str(path))
    if isinstance(error, RuntimeError) and "write failed" in str(error):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None

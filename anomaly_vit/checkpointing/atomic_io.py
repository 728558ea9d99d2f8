"""Checkpoint writing that never leaves a half-written file (`rundir.atomic_write`, durable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from anomaly_vit.rundir import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """A process killed while saving leaves the previous checkpoint intact and loadable."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        """Write `.<name>.tmp` beside `path`, flush it to disk, then rename it over `path`.

        A save that fails part-way (an exception, a full disk) removes its temp file; a process
        killed part-way leaves only the hidden temp file, which the next save overwrites.
        """
        atomic_write(path, lambda handle: torch.save(checkpoint, handle), durable=True)

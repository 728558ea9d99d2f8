"""The best checkpoint (best.ckpt): its tracker is saved up to date, and a run tests only its own.

Lightning runs checkpoint callbacks in list order at the end of an epoch, and restores
`best_model_path` from the checkpoint a run resumes, as stored.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from anomaly_vit.rundir import BEST_CHECKPOINT, CHECKPOINTS_DIR

log = logging.getLogger(__name__)


def best_trackers_first(callbacks: list) -> list:
    """`callbacks` with the monitoring checkpoint callbacks (best.ckpt) before the others.

    When last.ckpt is saved first, it stores the best tracker's state from BEFORE this epoch's
    score: a run resumed from it forgets that score and can overwrite best.ckpt with a worse model.
    """

    def tracks_best(callback) -> bool:
        return isinstance(callback, ModelCheckpoint) and callback.monitor is not None

    return sorted(callbacks, key=lambda callback: not tracks_best(callback))  # stable


def checked_best_path(best_model_path: str, output_dir: Path) -> str:
    """The best checkpoint to test: `best_model_path` when it lies in this run's checkpoints/.

    A resumed run gets `best_model_path` from the checkpoint it resumes, so a path outside
    `<run>/checkpoints/` is not followed: this run's own `best.ckpt`, else the current weights,
    are tested instead.
    """
    if not best_model_path:
        return ""
    folder = (output_dir / CHECKPOINTS_DIR).resolve()
    path = Path(best_model_path).resolve()
    if path.parent == folder:
        return str(path)
    own = folder / BEST_CHECKPOINT
    log.warning(
        "the resumed checkpoint names %s as the best checkpoint, outside this run's %s: not "
        "followed; testing %s instead.",
        best_model_path, folder, own if own.is_file() else "the current weights",
    )  # fmt: skip
    return str(own) if own.is_file() else ""

"""On Ctrl-C, print the exact command that resumes the run from its last checkpoint."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from anomaly_vit.rundir import CHECKPOINTS_DIR, LAST_CHECKPOINT

# overrides a resume must not repeat: it names the checkpoint itself and writes into its run
NOT_REPEATED = ("ckpt_path", "finetune_from", "run_name", "run_dir", "hydra.run.dir", "rewind")


def resume_command(task: str, run_dir: str | Path, overrides: list[str]) -> str:
    """`python -m anomaly_vit.<task> <the run's overrides> ckpt_path=<run>/checkpoints/last.ckpt`."""
    kept = [o for o in overrides if o.lstrip("+~").split("=")[0] not in NOT_REPEATED]
    last = Path(run_dir) / CHECKPOINTS_DIR / LAST_CHECKPOINT
    return " ".join([f"python -m anomaly_vit.{task}", *kept, f"ckpt_path={last}"])


class ResumeHint(L.Callback):
    """Lightning ends an interrupted fit with "attempting graceful shutdown" and exit 1; this
    adds how to go on: the resume command (an exact replay from the last finished epoch), or
    that no epoch finished yet."""

    def __init__(self, task: str = "train") -> None:
        self.task = task

    @rank_zero_only
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception) -> None:
        if not isinstance(exception, KeyboardInterrupt):
            return
        # let a background checkpoint write finish first (AsyncCheckpointIO); a failed write is
        # reported by Lightning's own teardown
        with contextlib.suppress(Exception):
            trainer.strategy.checkpoint_io.teardown()
        config = getattr(pl_module, "run_config", {}) or {}
        run_dir = config.get("run_dir") or trainer.default_root_dir
        if not (Path(run_dir) / CHECKPOINTS_DIR / LAST_CHECKPOINT).is_file():
            print(
                f"\ninterrupted before the first epoch ended: nothing to resume in {run_dir}; "
                "start the run again.",
                file=sys.stderr,
            )
            return
        command = resume_command(self.task, run_dir, list(config.get("overrides", [])))
        print(f"\ninterrupted; resume exactly where the last epoch ended with:\n  {command}",
              file=sys.stderr)  # fmt: skip

"""Continuing a run: is the run dir right for it, and what differs from the checkpoint's config.

Where a run writes (new or resumed) is `anomaly_vit.rundir`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from anomaly_vit.checkpointing.load import load_checkpoint
from anomaly_vit.errors import CheckpointError, RunDirError
from anomaly_vit.rundir import CHECKPOINTS_DIR, LAST_CHECKPOINT, METRICS_CSV, read_metrics_csv

log = logging.getLogger(__name__)

# config essentials a resume may change without breaking the replay (or that name the run)
FREE_TO_CHANGE = ("run_dir", "overrides", "hparams", "trainer", "finetune_from", "data.progress")


# config essentials a resume takes from the checkpoint's state, whatever the config says
RESTORED_FROM_CHECKPOINT = (
    "model.optimizer",
    "model.scheduler",
    "pretrain.optimizer",
    "pretrain.scheduler",
)


def check_new_run_dir(output_dir: Path, ckpt_path: str | None) -> None:
    """A run that does not resume (no `ckpt_path`) must not write into another run's folder."""
    if ckpt_path:
        return
    found = [p.name for p in (output_dir / METRICS_CSV, output_dir / CHECKPOINTS_DIR) if p.exists()]
    if found:
        raise RunDirError(
            f"hydra.run.dir={output_dir} already holds a run ({', '.join(found)}): resume it with "
            f"ckpt_path={output_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT}, or leave hydra.run.dir unset "
            "to start a new run in a new folder."
        )


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat |= _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def config_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every config essential that differs (free-to-change keys skipped)."""
    old, new = _flatten(before), _flatten(now)
    changes = []
    for key in sorted(set(old) | set(new)):
        if key.startswith(FREE_TO_CHANGE) or old.get(key) == new.get(key):
            continue
        changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


def check_no_truncation(ckpt_path: str, run_dir: Path, global_epoch: int, rewind: bool) -> None:
    """Resuming a run from a checkpoint older than its history would drop the later epochs
    (metrics.csv rows, TensorBoard points, last.ckpt): refused unless `rewind` is set.
    `last.ckpt` always may resume (a run killed while saving has one row more than it)."""
    if rewind or Path(ckpt_path).name == LAST_CHECKPOINT:
        return
    later = [int(r["epoch"]) for r in read_metrics_csv(run_dir / METRICS_CSV)]
    later = [epoch for epoch in later if epoch > global_epoch]
    if later:
        raise CheckpointError(
            f"ckpt_path={ckpt_path} is global epoch {global_epoch} but {run_dir} goes on to "
            f"epoch {max(later)}: resuming would drop epochs {min(later)}-{max(later)} "
            "(metrics.csv rows, TensorBoard points, last.ckpt). Resume from "
            f"{run_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT}, start a new run from it with "
            "finetune_from=..., or set rewind=true to drop those epochs."
        )


def check_resume(
    ckpt_path: str,
    run_dir: Path,
    essentials: dict[str, Any],
    trust_pickle: bool = False,
    rewind: bool = False,
) -> None:
    """Check `ckpt_path` loads and resuming it into `run_dir` loses no history (see `rewind`);
    warn when the run dir is new or the config differs from it."""
    checkpoint = load_checkpoint(ckpt_path, key="ckpt_path", trust_pickle=trust_pickle)
    info = checkpoint.get("anomaly_vit", {})
    source = Path(ckpt_path).resolve().parents[1]
    check_no_truncation(ckpt_path, run_dir, int(info.get("global_epoch", 0)), rewind)
    if source != run_dir.resolve():
        log.warning(
            "ckpt_path=%s resumes into a new run dir %s: its metrics.csv and TensorBoard start at "
            "global epoch %s; the earlier epochs stay in %s.",
            ckpt_path, run_dir, int(info.get("global_epoch", 0)) + 1, source,
        )  # fmt: skip
    changes = config_changes(info.get("config", {}), essentials)
    ignored = [c for c in changes if c.startswith(RESTORED_FROM_CHECKPOINT)]
    if ignored:
        log.warning(
            "ckpt_path=%s: %s ignored: a resume restores the optimizer and its learning-rate "
            "schedule from the checkpoint. To train on with new settings, start a new run from "
            "it with finetune_from=%s and drop ckpt_path.",
            ckpt_path, "; ".join(ignored), ckpt_path,
        )  # fmt: skip
    if changes:
        log.warning(
            "ckpt_path=%s: this config differs from the one the checkpoint was trained with, so "
            "the continuation is not an exact replay (repeat the run's overrides to resume "
            "exactly): %s",
            ckpt_path, "; ".join(changes[:8]) + (" ..." if len(changes) > 8 else ""),
        )  # fmt: skip
    log.info("resuming %s (global epoch %s) into %s", ckpt_path, info.get("global_epoch"), run_dir)

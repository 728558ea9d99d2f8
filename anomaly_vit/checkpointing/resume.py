"""Continuing a run: where a resumed run writes, and what differs from the checkpoint's config.

Importing this module registers the OmegaConf resolvers `conf/train.yaml` uses for the run dir:
`avit.resume_run_dir` and `avit.hydra_subdir`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from anomaly_vit.checkpointing.load import load_checkpoint

log = logging.getLogger(__name__)

# config essentials a resume may change without breaking the replay (or that name the run)
FREE_TO_CHANGE = ("run_dir", "overrides", "hparams", "trainer", "finetune_from", "data.progress")


def resume_run_dir(ckpt_path: str | None, new_run_dir: str) -> str:
    """The run dir of a train run: the run `ckpt_path` came from, else `new_run_dir`.

    `<run>/checkpoints/<name>.ckpt` resumes into `<run>`. A missing file, or one outside a
    `checkpoints/` folder, gets a new folder (and loading it then says what is wrong).
    """
    if ckpt_path:
        path = Path(str(ckpt_path)).expanduser()
        if path.is_file() and path.parent.name == "checkpoints":
            return str(path.resolve().parents[1])
    return new_run_dir


def hydra_subdir(run_dir: str, stamp: str) -> str:
    """`.hydra`, or `.hydra/resume_<stamp>` when `run_dir` already holds a run's config.

    A resumed run keeps the config and overrides it started with (the sweep report reads them).
    """
    existing = Path(str(run_dir)) / ".hydra" / "config.yaml"
    return f".hydra/resume_{stamp}" if existing.is_file() else ".hydra"


OmegaConf.register_new_resolver("avit.resume_run_dir", resume_run_dir, replace=True)
OmegaConf.register_new_resolver("avit.hydra_subdir", hydra_subdir, replace=True)


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


def check_resume(
    ckpt_path: str, run_dir: Path, essentials: dict[str, Any], trust_pickle: bool = False
) -> None:
    """Check `ckpt_path` loads; warn when the run dir is new or the config differs from it."""
    checkpoint = load_checkpoint(ckpt_path, key="ckpt_path", trust_pickle=trust_pickle)
    info = checkpoint.get("anomaly_vit", {})
    source = Path(ckpt_path).resolve().parents[1]
    if source != run_dir.resolve():
        log.warning(
            "ckpt_path=%s resumes into a new run dir %s: its metrics.csv and TensorBoard start at "
            "global epoch %s; the earlier epochs stay in %s.",
            ckpt_path, run_dir, int(info.get("global_epoch", 0)) + 1, source,
        )  # fmt: skip
    changes = config_changes(info.get("config", {}), essentials)
    if changes:
        log.warning(
            "ckpt_path=%s: this config differs from the one the checkpoint was trained with, so "
            "the continuation is not an exact replay (repeat the run's overrides to resume "
            "exactly): %s",
            ckpt_path, "; ".join(changes[:8]) + (" ..." if len(changes) > 8 else ""),
        )  # fmt: skip
    log.info("resuming %s (global epoch %s) into %s", ckpt_path, info.get("global_epoch"), run_dir)

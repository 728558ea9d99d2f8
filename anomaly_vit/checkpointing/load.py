"""Load checkpoints safely (weights_only) with messages that say what is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from anomaly_vit.errors import CheckpointError, MissingFileError
from anomaly_vit.rundir import CHECKPOINTS_DIR, LAST_CHECKPOINT

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
PICKLE_PROTOCOL_OPCODE = b"\x80"  # torch.save's legacy format starts with a pickle PROTO opcode
WEIGHTS_ONLY_FAILURE = "Weights only load failed"  # torch's message when weights_only refuses
MAX_DETAIL_CHARS = 300  # of the underlying error, quoted in the message
MAX_GLOBALS_SHOWN = 5  # refused globals named in the message


def checkpoint_in_folder(folder: Path) -> Path:
    """The checkpoint a user most likely meant by a folder: its last.ckpt (a run's checkpoints/
    folder), the run's checkpoints/last.ckpt (a run folder), else its newest .ckpt file."""
    for candidate in (folder / LAST_CHECKPOINT, folder / CHECKPOINTS_DIR / LAST_CHECKPOINT):
        if candidate.is_file():
            return candidate
    found = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if found:
        return found[-1]
    inside = "" if folder.name == CHECKPOINTS_DIR else CHECKPOINTS_DIR
    return folder / inside / LAST_CHECKPOINT


def refused_globals(path: Path, error: BaseException) -> str:
    """The globals (classes, functions) of `path` that weights_only refuses, found without
    running them; else the reason in torch's message, on one line."""
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - a file torch cannot list: fall back to its message
        names = []
    if names:
        shown = ", ".join(names[:MAX_GLOBALS_SHOWN])
        more = len(names) - MAX_GLOBALS_SHOWN
        return f"{shown}, and {more} more" if more > 0 else shown
    reason = re.search(r"WeightsUnpickler error: ([^\n]*?)(?: Please use|\n|$)", str(error))
    return (reason.group(1) if reason else " ".join(str(error).split()))[:MAX_DETAIL_CHARS]


def load_checkpoint(
    path: str | Path, key: str = "ckpt_path", trust_pickle: bool = False
) -> dict[str, Any]:
    """Load a Lightning checkpoint on CPU with `weights_only=True` unless `trust_pickle` is set.

    `key` is the config key the path came from, named in errors.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{key}={path} is a folder, not a checkpoint file; point it at a .ckpt file, e.g. "
            f"{checkpoint_in_folder(path)}."
        )
    if not path.is_file():
        raise MissingFileError(
            f"{key}={path} does not exist; point it at a .ckpt file in a run's checkpoints/ folder."
        )
    with path.open("rb") as handle:
        head = handle.read(len(ZIP_MAGIC))
    if not (head.startswith(ZIP_MAGIC) or head[:1] == PICKLE_PROTOCOL_OPCODE):
        raise CheckpointError(
            f"{key}={path} is not a checkpoint: the file was not written by torch.save (empty, "
            "text or another format); point it at a .ckpt file in a run's checkpoints/ folder."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as error:  # noqa: BLE001 - any unpickling failure becomes one clear message
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:MAX_DETAIL_CHARS]
        if not trust_pickle and WEIGHTS_ONLY_FAILURE in str(error):
            raise CheckpointError(
                f"{key}={path} holds objects that safe loading (weights_only) refuses: "
                f"{refused_globals(path, error)}. If you trust this file, set trust_pickle=true "
                "to load it as a full pickle."
            ) from None
        raise CheckpointError(
            f"{key}={path} is not a readable checkpoint, it is truncated or corrupt ({detail}); "
            "use another checkpoint of the run (e.g. the previous epoch_XXXX.ckpt)."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{key}={path} is not a Lightning checkpoint (no 'state_dict').")
    return checkpoint


def check_classifier_checkpoint(checkpoint: dict[str, Any], path: str | Path, key: str) -> None:
    """A pretraining checkpoint (`anomaly_vit.pretrain`) has an encoder, no trained classifier:
    eval and explain refuse it with the command that makes one from it."""
    info = checkpoint.get("anomaly_vit") or {}
    if info.get("pretrain") or "objective" in (checkpoint.get("hyper_parameters") or {}):
        raise CheckpointError(
            f"{key}={path} is a pretraining checkpoint (anomaly_vit.pretrain): its encoder has "
            "no trained classifier to use here. Fine-tune it first: python -m anomaly_vit.train "
            f"finetune_from={path} (with the pretraining's data and model overrides)."
        )

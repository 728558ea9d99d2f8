"""Load checkpoints safely (weights_only) with messages that say what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_checkpoint(path: str | Path, key: str = "ckpt_path", trust_pickle: bool = False) -> dict[str, Any]:
    """Load a Lightning checkpoint on CPU with `weights_only=True` unless `trust_pickle` is set.

    `key` is the config key the path came from, named in errors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path} does not exist; point it at a .ckpt file in a run's checkpoints/ folder.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as error:  # noqa: BLE001 - any unpickling failure becomes one clear message
        hint = "" if trust_pickle else (" If you trust this file and it holds custom objects, "
                                       "set trust_pickle=true to load it as a full pickle.")
        raise ValueError(f"{key}={path} is not a readable checkpoint ({type(error).__name__}: {error}).{hint}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{key}={path} is not a Lightning checkpoint (no 'state_dict').")
    return checkpoint

"""Save the random number generators' states in every checkpoint and restore them on resume.

Lightning restores weights, optimiser, scheduler and epoch, but not the global RNGs that drive
augmentation, dropout / drop_path and the DataLoader's base seed. Without them a resumed run
draws different random numbers from the epoch it resumes at on, and its metrics drift away
from an uninterrupted run's. The states are stored as tensors and plain numbers, so the
checkpoint still loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def collect_rng_states() -> dict[str, Any]:
    """The global torch (CPU and CUDA), numpy and Python RNG states, weights_only-safe."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore states written by `collect_rng_states`."""
    torch.set_rng_state(states["torch"])
    state = states["numpy"]
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["kind"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RNGStateCheckpoint(L.Callback):
    """Put the RNG states in each checkpoint; restore them when a fit resumes from one.

    Checkpoints are written at the end of an epoch, after validation, and nothing draws random
    numbers between that point and the next epoch's DataLoader iterator. A resumed fit restores
    callback states right before it builds the optimisers, which creates the first epoch's
    iterator (to count the steps), and its sanity check runs in an isolated RNG; restoring the
    states on load therefore makes the resumed run draw exactly what an uninterrupted run draws.
    (Strategies that restore callbacks after setup, such as DeepSpeed, are not covered.)
    """

    def state_dict(self) -> dict[str, Any]:
        return {"rng_states": collect_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng_states" in state_dict:
            set_rng_states(state_dict["rng_states"])

"""Running the CLI in a subprocess and reading what a run wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.config import ROOT


def run_cli(
    module: str, *overrides: str, cwd: Path = ROOT, check: bool = True
) -> subprocess.CompletedProcess:
    """Run `python -m module overrides...` in a subprocess and return it (output captured)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{module} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def tensorboard_steps(run_dir: Path, tag: str) -> list[int]:
    """Sorted steps of scalar `tag` over every event file of a run's tensorboard/ folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            steps += [e.step for e in accumulator.Scalars(tag)]
    return sorted(steps)


def tensorboard_points(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of scalar `tag` as TensorBoard shows the run's tensorboard/ folder: one
    reader over every event file in order, so a resumed run's purge hides abandoned points."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def explain_tags(block: dict) -> dict[str, float]:
    """The TensorBoard hparams metrics a summary.json "explain" block should give (nulls left out)."""
    named = {**block["maps"], **{f"baseline_{k}": v for k, v in block["baselines"].items()}}
    tags = {f"explain/{k}": float(block[k]) for k in ("n_scored", "n_misclassified")}
    return tags | {
        f"explain/{kind}/{name}": value
        for kind, scores in named.items()
        for name, value in scores.items()
        if value is not None
    }


def copy_run(run_dir: Path, dst: Path) -> Path:
    """Copy a run folder; its checkpoints' callback states point at the copy, as if it ran there."""
    import shutil

    import torch

    shutil.copytree(run_dir, dst)
    old, new = str(run_dir), str(dst)

    def retarget(value):
        if isinstance(value, str):
            return value.replace(old, new)
        if isinstance(value, dict):
            return {retarget(k): retarget(v) for k, v in value.items()}
        return value

    for path in (dst / "checkpoints").glob("*.ckpt"):
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["callbacks"] = retarget(checkpoint["callbacks"])
        torch.save(checkpoint, path)
    return dst

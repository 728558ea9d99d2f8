"""Shared fixtures: Hydra config composition and one trained smoke run for the whole session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("PYTHONHASHSEED", "0")


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a config like the CLI does, with the run dir set to `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg


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


@pytest.fixture(scope="session")
def smoke_data_root(tmp_path_factory) -> Path:
    """A project root whose data/ holds the smoke demo set (generated once per session)."""
    return tmp_path_factory.mktemp("smoke_root")


@pytest.fixture(scope="session")
def smoke_run(smoke_data_root) -> Path:
    """Train `debug=smoke` once, in process; returns its run dir (read-only for tests)."""
    from anomaly_vit.train import train

    run_dir = smoke_data_root / "outputs" / "runs" / "smoke"
    cfg = compose_config("train", ["debug=smoke", f"paths.root_dir={smoke_data_root}"], run_dir)
    train(cfg)
    return run_dir

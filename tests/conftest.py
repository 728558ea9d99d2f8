"""Shared fixtures (one trained smoke run for the whole session); helpers live in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import compose_config

os.environ.setdefault("PYTHONHASHSEED", "0")


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

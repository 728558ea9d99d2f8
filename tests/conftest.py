"""Shared fixtures (the trained smoke run and the reference run, once per session); helpers live
in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import compose_config
from tests.helpers.overrides import REFERENCE, SMOKE_TOKEN_OVERRIDES

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


@pytest.fixture(scope="session")
def reference_run(smoke_data_root) -> Path:
    """`REFERENCE` trained once, uninterrupted, in process: the run that killed-and-resumed runs
    (tests/e2e/test_resume.py, test_trust.py, tests/unit/checkpointing/test_faults.py) must equal.
    Its data is the smoke demo set (`shared_demo`). Read-only for tests."""
    from anomaly_vit.train import train

    run_dir = smoke_data_root / "outputs" / "reference"
    train(compose_config("train", [*REFERENCE, f"paths.root_dir={smoke_data_root}"], run_dir))
    return run_dir


@pytest.fixture(scope="session")
def smoke_run_tokens(smoke_data_root) -> Path:
    """`debug=smoke` with the mask loss (a token head, decision=mix), trained once; read-only."""
    from anomaly_vit.train import train

    run_dir = smoke_data_root / "outputs" / "runs" / "smoke_tokens"
    cfg = compose_config(
        "train", [*SMOKE_TOKEN_OVERRIDES, f"paths.root_dir={smoke_data_root}"], run_dir
    )
    train(cfg)
    return run_dir


@pytest.fixture(scope="session")
def token_bundle(smoke_run_tokens, tmp_path_factory) -> Path:
    """The ONNX bundle of `smoke_run_tokens`' best checkpoint (read-only)."""
    from anomaly_vit.deploy.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tokens_onnx"
    return export_bundle(smoke_run_tokens / "checkpoints" / "best.ckpt", "onnx", out_dir=out)


@pytest.fixture(scope="session")
def plain_bundle(smoke_run, tmp_path_factory) -> Path:
    """The ONNX bundle of `smoke_run` (no token head: evidence maps; read-only)."""
    from anomaly_vit.deploy.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "plain_onnx"
    return export_bundle(smoke_run / "checkpoints" / "best.ckpt", "onnx", out_dir=out)

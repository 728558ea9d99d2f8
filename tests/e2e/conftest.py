"""Session fixtures of the end-to-end tests: the reference run killed after its first epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.helpers.overrides import REFERENCE, shared_demo


@pytest.fixture(scope="session")
def killed_run(tmp_path_factory, smoke_data_root) -> Path:
    """`REFERENCE` killed (exit 17, like a kill) once epoch 1 is trained and saved, in a process
    of its own. Read-only: resume a copy (`tests.helpers.copy_run`)."""
    root = tmp_path_factory.mktemp("killed")
    run_dir = root / "run"
    killed = run_cli("anomaly_vit.train", *REFERENCE, f"paths.root_dir={root}",
                     shared_demo(smoke_data_root), f"hydra.run.dir={run_dir}",
                     "+callbacks.kill._target_=tests.helpers.callbacks.KillAfterEpoch",
                     "+callbacks.kill.epoch=1", check=False)  # fmt: skip
    assert killed.returncode == 17, killed.stderr[-3000:]
    return run_dir

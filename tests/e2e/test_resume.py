"""Resume: a run killed after epoch 2 and resumed from last.ckpt ends exactly like one that was
never interrupted (metrics.csv rows, test metrics, weights), in the same folder and TB run."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import pytest
import torch

from anomaly_vit.checkpointing.resume import config_changes
from anomaly_vit.rundir import hydra_subdir, resume_run_dir
from tests.helpers import run_cli, tensorboard_points, tensorboard_steps
from tests.helpers.overrides import RESUME_4_EPOCHS


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The 4-epoch run the interrupted ones must end up equal to."""
    root = tmp_path_factory.mktemp("resume")
    run_cli(
        "anomaly_vit.train",
        *RESUME_4_EPOCHS,
        f"paths.root_dir={root}",
        f"hydra.run.dir={root / 'full'}",
    )
    return root / "full"


def _same_rows(full: Path, part: Path) -> None:
    rows_full, rows_part = _rows(full), _rows(part)
    assert [int(r["epoch"]) for r in rows_part] == [1, 2, 3, 4]  # none lost, none twice
    assert rows_part[0].keys() == rows_full[0].keys()
    for a, b in zip(rows_full, rows_part, strict=True):
        for key in a:
            assert float(b[key]) == pytest.approx(float(a[key]), abs=1e-6), (a["epoch"], key)


@pytest.mark.slow
def test_resume_equals_uninterrupted(tmp_path, uninterrupted):
    full, part = uninterrupted, tmp_path / "part"
    root = [f"paths.root_dir={tmp_path}"]
    killed = run_cli("anomaly_vit.train", *RESUME_4_EPOCHS, *root, f"hydra.run.dir={part}",
                     "+callbacks.kill._target_=tests.helpers.callbacks.KillAfterEpoch", "+callbacks.kill.epoch=2",
                     check=False)  # fmt: skip
    assert killed.returncode == 17
    assert [int(r["epoch"]) for r in _rows(part)] == [1, 2]
    assert not (part / "summary.json").exists()

    # no hydra.run.dir: the run dir comes from the checkpoint's path
    resumed = run_cli(
        "anomaly_vit.train", *RESUME_4_EPOCHS, *root, f"ckpt_path={part}/checkpoints/last.ckpt"
    )
    assert f"Run written to {part}" in resumed.stdout
    assert not (tmp_path / "outputs" / "runs").exists()  # no second run dir
    assert "kill" in (part / ".hydra" / "overrides.yaml").read_text()  # the first config is kept
    assert len(list((part / ".hydra").glob("resume_*/overrides.yaml"))) == 1

    _same_rows(full, part)
    test_full = json.loads((full / "summary.json").read_text())["test"]
    test_part = json.loads((part / "summary.json").read_text())["test"]
    for key, value in test_full.items():
        if isinstance(value, float) and math.isfinite(value):
            assert test_part[key] == pytest.approx(value, abs=1e-6), key
    assert test_part["test/confusion"] == test_full["test/confusion"]
    weights_full = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    weights_part = torch.load(part / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(weights_full[k], weights_part[k]) for k in weights_full)
    # one TensorBoard run: every epoch once, no gap, no duplicate
    assert tensorboard_steps(part, "train/loss") == [1, 2, 3, 4]
    assert sorted(p.name for p in (part / "checkpoints").glob("epoch_*.ckpt")) == [
        f"epoch_000{i}.ckpt" for i in (1, 2, 3, 4)
    ]


@pytest.mark.slow
def test_killed_right_after_an_epoch_with_the_background_writer(tmp_path, uninterrupted):
    """The default writer (checkpoint_in_background=true) and no waiting for it: the process
    dies the moment epoch 2 is over, its checkpoint possibly still being written."""
    part = tmp_path / "part"
    root = [f"paths.root_dir={tmp_path}"]
    killed = run_cli("anomaly_vit.train", *RESUME_4_EPOCHS, *root, f"hydra.run.dir={part}",
                     "+callbacks.kill._target_=tests.helpers.callbacks.KillAfterEpoch", "+callbacks.kill.epoch=2",
                     "+callbacks.kill.wait_for_writer=false", check=False)  # fmt: skip
    assert killed.returncode == 17
    # every checkpoint file that survived loads, weights only (a write cut short left no file)
    survivors = sorted((part / "checkpoints").glob("*.ckpt"))
    assert part / "checkpoints" / "last.ckpt" in survivors
    epochs: dict[str, int] = {}
    for path in survivors:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
        assert checkpoint["state_dict"], path.name
        epochs[path.name] = int(checkpoint["epoch"]) + 1  # Lightning's is 0-based, at the save
    # epochs done: 2, or 1 when the kill beat the writer (files are queued one after the other:
    # epoch_0002.ckpt may have landed and last.ckpt not yet); never a torn or later file
    assert epochs["last.ckpt"] in (1, 2) and set(epochs.values()) <= {1, 2}
    assert [int(r["epoch"]) for r in _rows(part)] == [1, 2]  # metrics.csv is written in-line

    run_cli("anomaly_vit.train", *RESUME_4_EPOCHS, *root, f"ckpt_path={part}/checkpoints/last.ckpt")
    _same_rows(uninterrupted, part)  # the epoch the writer lost is trained again, once
    # TensorBoard shows every epoch once: a point of an epoch trained again is purged
    shown = tensorboard_points(part, "train/loss")
    assert [step for step, _ in shown] == [1, 2, 3, 4]
    expected = tensorboard_points(uninterrupted, "train/loss")
    assert [v for _, v in shown] == pytest.approx([v for _, v in expected], abs=1e-6)
    assert sorted(p.name for p in (part / "checkpoints").glob("epoch_*.ckpt")) == [
        f"epoch_000{i}.ckpt" for i in (1, 2, 3, 4)
    ]


def test_run_dir_of_a_checkpoint(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    new = str(tmp_path / "new")  # a new run's folder, claimed (created) once per process
    assert resume_run_dir(str(ckpt), new) == str(tmp_path / "run")
    assert resume_run_dir(None, new) == new and Path(new).is_dir()
    assert resume_run_dir(str(tmp_path / "missing.ckpt"), new) == new  # a clear load error follows
    loose = tmp_path / "loose.ckpt"
    loose.write_bytes(b"x")
    assert resume_run_dir(str(loose), new) == new
    assert hydra_subdir(str(tmp_path / "run"), "T") == ".hydra"
    (tmp_path / "run" / ".hydra").mkdir()
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("{}")
    assert hydra_subdir(str(tmp_path / "run"), "T") == ".hydra/resume_T"


def test_resuming_from_an_earlier_checkpoint_hides_the_abandoned_tensorboard_points(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from anomaly_vit.callbacks.metrics_writer import purge_tensorboard_from

    first = TensorBoardLogger(tmp_path, name="tensorboard", version="")
    for step in (1, 2, 3, 4):
        first.log_metrics({"train/loss": float(step)}, step=step)
    first.finalize("success")
    time.sleep(1.1)  # event files sort by their name, which starts with the creation second
    second = TensorBoardLogger(tmp_path, name="tensorboard", version="")  # resumed from epoch 2
    purge_tensorboard_from(second, 3)
    for step in (3, 4):
        second.log_metrics({"train/loss": 10.0 * step}, step=step)
    second.finalize("success")
    accumulator = EventAccumulator(str(tmp_path / "tensorboard"))
    accumulator.Reload()
    points = [(e.step, e.value) for e in accumulator.Scalars("train/loss")]
    assert points == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_config_changes_name_what_breaks_an_exact_resume():
    before = {
        "seed": 1,
        "data": {"synthetic_fraction": 0.5, "progress": True},
        "trainer": {"max_epochs": 4},
    }
    now = {
        "seed": 1,
        "data": {"synthetic_fraction": 0.25, "progress": False},
        "trainer": {"max_epochs": 8},
    }
    assert config_changes(before, now) == ["data.synthetic_fraction: 0.5 -> 0.25"]

"""Faults: a save cut short keeps the previous checkpoint; kill -9 mid-epoch and resume ends
like an uninterrupted run; a non-finite loss stops with one line and a loadable last.ckpt;
same seed twice gives the same metrics; safe (weights_only) checkpoint loading."""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from anomaly_vit.checkpointing.atomic_io import AtomicCheckpointIO
from anomaly_vit.checkpointing.load import load_checkpoint
from anomaly_vit.checkpointing.rng_state import collect_rng_states, set_rng_states
from anomaly_vit.errors import UserError
from anomaly_vit.model.module import ViTClassifier
from anomaly_vit.train import train
from tests.helpers import ROOT, compose_config, paired_tree, run_cli, tiny
from tests.helpers.overrides import RESUME_3_EPOCHS

# ------------------------------------------------------------------------ atomic writes


def test_a_save_that_fails_midway_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, path)

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("anomaly_vit.checkpointing.atomic_io.torch.save", torn_save)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, path)
    checkpoint = load_checkpoint(path)
    assert checkpoint["epoch"] == 1 and torch.equal(checkpoint["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # temp file removed


SAVE_FOREVER = """
import sys, torch
from anomaly_vit.checkpointing.atomic_io import AtomicCheckpointIO
io, n = AtomicCheckpointIO(), int(sys.argv[2])
for round in range(1, 10_000):
    io.save_checkpoint({"state_dict": {"w": torch.full((n,), float(round))}, "round": round}, sys.argv[1])
"""


@pytest.mark.slow
def test_kill_9_while_saving_a_big_checkpoint_keeps_the_previous_one(tmp_path) -> None:
    path = tmp_path / "last.ckpt"
    tmp = tmp_path / ".last.ckpt.tmp"
    n = 48 * 2**20  # floats: a 192 MB checkpoint takes a while to write and fsync
    proc = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(path), str(n)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while not (path.exists() and tmp.exists() and tmp.stat().st_size > 0):
            assert proc.poll() is None and time.monotonic() < deadline, "saver died or hung"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of writing round >= 2
    finally:
        proc.kill()
        proc.wait()
    assert tmp.exists()  # the torn write stayed in the hidden temp file
    checkpoint = load_checkpoint(path)
    round_ = checkpoint["round"]
    assert round_ >= 1
    weights = checkpoint["state_dict"]["w"]
    assert weights.numel() == n and bool((weights == float(round_)).all())


# ------------------------------------------------------------- same seed, same numbers


class SaveSpy:
    """Record every path Lightning saves a checkpoint to through AtomicCheckpointIO."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        original = AtomicCheckpointIO.save_checkpoint

        def save_checkpoint(io, checkpoint, path, storage_options=None) -> None:
            self.paths.append(Path(path))
            original(io, checkpoint, path, storage_options)

        self.save_checkpoint = save_checkpoint


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory) -> tuple[Path, Path, SaveSpy]:
    """The same tiny deterministic run twice (2 epochs), saves spied on."""
    tmp = tmp_path_factory.mktemp("twins")
    data = paired_tree(tmp / "data")
    spy = SaveSpy()
    runs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AtomicCheckpointIO, "save_checkpoint", spy.save_checkpoint)
        for name in ("a", "b"):
            overrides = tiny(tmp, data, "trainer.max_epochs=2", "trainer.deterministic=true",
                             "model.net.drop_path_rate=0.1")  # fmt: skip
            train(compose_config("train", overrides, tmp / name))
            runs.append(tmp / name)
    return runs[0], runs[1], spy


def test_same_seed_and_config_give_identical_metrics(twin_runs) -> None:
    a, b, _ = twin_runs
    text = (a / "metrics.csv").read_text()
    assert len(text.splitlines()) == 3  # header and epochs 1, 2
    assert (b / "metrics.csv").read_text() == text
    weights_a = load_checkpoint(a / "checkpoints" / "last.ckpt")["state_dict"]
    weights_b = load_checkpoint(b / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_every_checkpoint_is_written_through_the_atomic_io(twin_runs) -> None:
    a, _, spy = twin_runs
    written = {p.name for p in (a / "checkpoints").iterdir()}
    assert written == {"last.ckpt", "best.ckpt", "epoch_0001.ckpt", "epoch_0002.ckpt"}
    saved = {p.name for p in spy.paths if p.parent == a / "checkpoints"}
    assert saved == written  # last, best and periodic: every file came through the plugin


def test_rng_states_round_trip_and_load_weights_only(tmp_path) -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    states = collect_rng_states()
    expected = (torch.rand(4), np.random.rand(3), __import__("random").random())
    torch.save({"rng": states}, tmp_path / "rng.pt")
    restored = torch.load(tmp_path / "rng.pt", weights_only=True)["rng"]
    torch.manual_seed(99)
    np.random.seed(99)
    set_rng_states(restored)
    again = (torch.rand(4), np.random.rand(3), __import__("random").random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


# ---------------------------------------------------------------- kill -9 mid-epoch, resume


def _metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as handle:
        return [
            {k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(handle)
        ]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path) -> None:
    full, part, marker = tmp_path / "full", tmp_path / "part", tmp_path / "in_epoch_3"
    root = f"paths.root_dir={tmp_path}"
    run_cli("anomaly_vit.train", *RESUME_3_EPOCHS, root, f"hydra.run.dir={full}")

    pause = ["+callbacks.pause._target_=tests.helpers.callbacks.PauseMidEpoch",
             f"+callbacks.pause.marker={marker}", "+callbacks.pause.epoch=3"]  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "anomaly_vit.train",
        *RESUME_3_EPOCHS,
        root,
        f"hydra.run.dir={part}",
        *pause,
    ]
    with (tmp_path / "killed.log").open("w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            while not marker.exists():
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 3: epochs 1-2 are saved
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    last = load_checkpoint(part / "checkpoints" / "last.ckpt")
    assert last["anomaly_vit"]["global_epoch"] == 2  # what is lost: the part of epoch 3 done
    before = _metric_rows(part)
    assert [r["epoch"] for r in before] == ["1", "2"]

    resumed = run_cli("anomaly_vit.train", *RESUME_3_EPOCHS, root, f"hydra.run.dir={part}",
                      f"ckpt_path={part}/checkpoints/last.ckpt")  # fmt: skip
    assert "Restored all states from the checkpoint" in resumed.stdout + resumed.stderr
    after, uninterrupted = _metric_rows(part), _metric_rows(full)
    assert after[:2] == before  # epochs 1-2 are not trained again
    assert [r["epoch"] for r in after] == ["1", "2", "3"]
    assert after == uninterrupted  # every metric of every epoch, exactly
    weights_full = load_checkpoint(full / "checkpoints" / "last.ckpt")["state_dict"]
    weights_part = load_checkpoint(part / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(weights_full[k], weights_part[k]) for k in weights_full)


# ------------------------------------------------------------------------ non-finite loss


def test_non_finite_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys
) -> None:
    data = paired_tree(tmp_path / "data", n_items=4)
    loss = ViTClassifier._loss

    def nan_in_epoch_2(self, logits, labels):
        value = loss(self, logits, labels)
        return value * float("nan") if self.training and self.global_epoch == 2 else value

    monkeypatch.setattr(ViTClassifier, "_loss", nan_in_epoch_2)
    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    run_dir = tmp_path / "run"
    cfg = compose_config("train", tiny(tmp_path, data, "trainer.max_epochs=3"), run_dir)
    with pytest.raises(UserError) as info:
        train(cfg)
    message = info.value.message
    assert message.startswith("non-finite training loss nan at global epoch 2, batch 0:")
    assert "lower model.optimizer.lr" in message and "\n" not in message
    assert f"error: {message}" in capsys.readouterr().err
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["anomaly_vit"]["global_epoch"] == 1
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )
    assert [p.name for p in (run_dir / "checkpoints").glob(".*")] == []  # no torn temp file
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 2  # epoch 1 only


# ------------------------------------------------------------------- safe checkpoint loading


def _with_pickled_object(src: Path, dst: Path) -> Path:
    checkpoint = torch.load(src, weights_only=True)
    checkpoint["hyper_parameters"]["legacy_args"] = argparse.Namespace(lr=0.1)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, dst)
    return dst


def test_loading_is_weights_only_unless_trust_pickle(smoke_run, tmp_path) -> None:
    plain = load_checkpoint(smoke_run / "checkpoints" / "last.ckpt")  # our own: weights_only works
    assert "state_dict" in plain
    risky = _with_pickled_object(smoke_run / "checkpoints" / "last.ckpt", tmp_path / "c" / "x.ckpt")
    with pytest.raises(ValueError, match="refuses") as info:
        load_checkpoint(risky, key="finetune_from")
    assert f"finetune_from={risky}" in str(info.value) and "argparse.Namespace" in str(info.value)
    assert "set trust_pickle=true" in str(info.value)
    trusted = load_checkpoint(risky, key="finetune_from", trust_pickle=True)
    assert trusted["hyper_parameters"]["legacy_args"].lr == 0.1


@pytest.mark.parametrize("key", ["ckpt_path", "finetune_from"])
def test_untrusted_pickle_is_refused_end_to_end(smoke_run, tmp_path, monkeypatch, key) -> None:
    risky = _with_pickled_object(smoke_run / "checkpoints" / "last.ckpt", tmp_path / "c" / "x.ckpt")
    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    cfg = compose_config("train", ["debug=smoke", f"paths.root_dir={tmp_path}", f"{key}={risky}"],
                         tmp_path / "run")  # fmt: skip
    with pytest.raises(UserError) as info:
        train(cfg)
    assert info.value.message.startswith(f"{key}={risky} holds objects that safe loading")
    assert "trust_pickle=true" in info.value.message

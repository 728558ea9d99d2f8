"""What a hostile tester found (issue 22): each case now ends in one clear line naming the file
or key and what to do, and loses nothing."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_vit.build import build_datamodule
from anomaly_vit.checkpointing.atomic_io import AtomicCheckpointIO
from anomaly_vit.checkpointing.resume import check_resume
from anomaly_vit.cli.eval import evaluate
from anomaly_vit.cli.train import train
from anomaly_vit.data.report import build_report, problem_lines
from anomaly_vit.data.sources import ManifestSource
from anomaly_vit.errors import RunDirError, UserError
from anomaly_vit.explain.command import explain
from anomaly_vit.rundir import (
    LOCK_FILE,
    claim_run_dir,
    last_checkpoint_note,
    resume_run_dir,
    run_lock,
)
from tests.helpers import compose_config, paired_tree, tiny

SMOKE = ["debug=smoke", "callbacks.maps=null"]


@pytest.fixture
def quiet(monkeypatch):
    """User errors as the CLI shows them (UserError with its one line), not re-raised."""
    monkeypatch.setenv("AVIT_TRACEBACK", "0")


@pytest.fixture
def run_copy(smoke_run, tmp_path) -> Path:
    """A copy of the smoke run (tests write into it)."""
    return Path(shutil.copytree(smoke_run, tmp_path / "run"))


def _one_line(info) -> str:
    message = info.value.message
    assert "\n" not in message
    return message


# ------------------------------------------------------------------- 3. run_name escapes runs/
def test_a_run_name_climbing_out_of_runs_is_refused(tmp_path) -> None:
    target = tmp_path / "outputs" / "runs" / "2026-01-01_00-00-00_../../../escape_run"
    with pytest.raises(UserError) as info:
        claim_run_dir(str(target))
    assert "leaves the runs folder through '..': set run_name" in _one_line(info)
    assert not (tmp_path / "escape_run").exists() and not (tmp_path / "outputs").exists()


# -------------------------------------------------------- 6, 7. read-only output or run folder
def test_a_read_only_output_folder_is_one_line(tmp_path, monkeypatch) -> None:
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(UserError) as info:
        claim_run_dir(str(tmp_path / "runs" / "x"))
    message = _one_line(info)
    assert message.startswith(f"could not write {tmp_path / 'runs' / 'x'}: the file system is")
    assert "paths.log_dir" in message


def test_resuming_a_read_only_run_folder_is_one_line(run_copy, monkeypatch) -> None:
    ckpt = run_copy / "checkpoints" / "last.ckpt"
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != run_copy)
    with pytest.raises(UserError) as info:
        resume_run_dir(str(ckpt), "unused")
    assert f"its run folder {run_copy} is read-only" in _one_line(info)


# --------------------------------------------------------------------------- 2. a disk fills up
def test_a_disk_that_fills_during_training_is_one_line_and_keeps_the_checkpoints(
    smoke_data_root, tmp_path, monkeypatch, quiet, caplog
) -> None:
    saves, real_save = [], torch.save

    def fills_up(obj, handle, *args, **kwargs):
        saves.append(1)
        if len(saves) > 3:  # epoch 1's three checkpoints fit; epoch 2's do not
            handle.write(b"PK\x03\x04 half")
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr("anomaly_vit.checkpointing.atomic_io.torch.save", fills_up)
    run = tmp_path / "run"
    cfg = compose_config("train", [*SMOKE, f"paths.root_dir={smoke_data_root}", "test=false"], run)
    with pytest.raises(UserError) as info:
        train(cfg)
    message = _one_line(info)
    assert "the disk is full" in message and f"kept intact in {run / 'checkpoints'}:" in message
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["best.ckpt", "epoch_0001.ckpt", "last.ckpt"]  # epoch 1's, whole
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    said_at_once = [r for r in caplog.records if "the disk is full" in r.getMessage()]
    assert said_at_once and said_at_once[0].levelno == logging.ERROR


def test_a_failed_checkpoint_write_names_what_was_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("anomaly_vit.checkpointing.atomic_io.torch.save",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))  # fmt: skip
    with pytest.raises(RunDirError, match="no checkpoint had been written yet"):
        AtomicCheckpointIO().save_checkpoint({"x": 1}, tmp_path / "run" / "checkpoints" / "a.ckpt")


# ------------------------------------------------------------ 9. two resumes of one run at once
def test_a_second_process_in_a_run_folder_is_refused(run_copy, quiet) -> None:
    overrides = [
        *SMOKE,
        f"paths.root_dir={run_copy.parent}",
        f"ckpt_path={run_copy / 'checkpoints' / 'last.ckpt'}",
    ]
    with run_lock(run_copy), pytest.raises(UserError) as info:  # run_lock: the first resume
        train(compose_config("train", overrides, run_copy))
    message = _one_line(info)
    assert f"the run {run_copy} is in use by process {os.getpid()}" in message
    assert not (run_copy / LOCK_FILE).exists()  # released on exit


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path) -> None:
    (tmp_path / LOCK_FILE).write_text("process 999999 on a crashed host")  # no one holds it
    with run_lock(tmp_path):
        assert str(os.getpid()) in (tmp_path / LOCK_FILE).read_text()
    assert not (tmp_path / LOCK_FILE).exists()


# -------------------------------------------------------------- 4. a good image with a mask
def test_a_good_image_whose_mask_marks_a_defect_is_reported(tmp_path) -> None:
    data = paired_tree(tmp_path / "data")
    for view in ("left", "right"):
        mask = data / "masks" / view / "good" / "good_00.png"
        mask.parent.mkdir(parents=True)
        Image.new("L", (32, 32), 255).save(mask)
    cfg = compose_config("train", tiny(tmp_path, data), tmp_path / "run")
    datamodule = build_datamodule(cfg.data, tmp_path / "run")
    datamodule.setup()
    report = build_report(datamodule)
    assert report["good_with_mask"] == sorted(
        str(data / view / "good" / "good_00.png") for view in ("left", "right")
    )
    assert report["problems"]["good_with_mask"] == 2
    assert any("labelled good whose mask marks a defect" in line for line in problem_lines(report))


# ------------------------------------------------------------- 5. a pretraining checkpoint
@pytest.mark.parametrize("command", ["eval", "explain"])
def test_eval_and_explain_refuse_a_pretraining_checkpoint_with_the_way_on(
    run_copy, tmp_path, quiet, command
) -> None:
    ckpt = run_copy / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["anomaly_vit"]["pretrain"] = {"objective": "mae", "encoder_prefix": "net."}
    torch.save(checkpoint, ckpt)
    extra = [] if command == "eval" else [f"input={tmp_path}"]
    cfg = compose_config(command, [f"ckpt_path={ckpt}", *extra], tmp_path / "out")
    with pytest.raises(UserError) as info:
        (evaluate if command == "eval" else explain)(cfg)
    message = _one_line(info)
    assert message.startswith(f"ckpt_path={ckpt} is a pretraining checkpoint")
    assert f"python -m anomaly_vit.train finetune_from={ckpt}" in message


# ------------------------------------------------------------- 10. lr given to a resume
def test_a_new_learning_rate_on_resume_is_warned_as_ignored(run_copy, caplog) -> None:
    ckpt = run_copy / "checkpoints" / "last.ckpt"
    essentials = torch.load(ckpt, weights_only=True)["anomaly_vit"]["config"]
    old_lr = essentials["model"]["optimizer"]["lr"]
    essentials["model"]["optimizer"]["lr"] = 5e-3
    check_resume(str(ckpt), run_copy, essentials)
    (warning,) = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert f"model.optimizer.lr: {old_lr!r} -> 0.005 ignored" in warning
    assert f"finetune_from={ckpt}" in warning


# ------------------------------------------------------------- 11. divergence message
def test_divergence_names_only_a_checkpoint_that_exists(run_copy, tmp_path) -> None:
    assert last_checkpoint_note(tmp_path) == "No checkpoint had been written yet."
    kept = run_copy / "checkpoints" / "last.ckpt"
    assert last_checkpoint_note(run_copy) == f"The last good checkpoint is kept: {kept}."


def test_divergence_in_the_first_epoch_says_no_checkpoint_exists(
    smoke_data_root, tmp_path, quiet
) -> None:
    overrides = [*SMOKE, f"paths.root_dir={smoke_data_root}", "model.optimizer.lr=1e4",
                 "trainer.max_epochs=1"]  # fmt: skip
    with pytest.raises(UserError) as info:
        train(compose_config("train", overrides, tmp_path / "run"))
    message = _one_line(info)
    assert "non-finite" in message and message.endswith("No checkpoint had been written yet.")


# ------------------------------------------------------- 12. ckpt_path and finetune_from
def test_ckpt_path_and_finetune_from_together_are_refused(run_copy, tmp_path, quiet) -> None:
    ckpt = run_copy / "checkpoints" / "last.ckpt"
    summary = (run_copy / "summary.json").read_text()
    overrides = [*SMOKE, f"ckpt_path={ckpt}", f"finetune_from={ckpt}"]
    with pytest.raises(UserError) as info:
        train(compose_config("train", overrides, run_copy))
    assert "are both set" in _one_line(info) and "set only one" in info.value.message
    assert (run_copy / "summary.json").read_text() == summary  # the old run untouched


# ------------------------------------------------------------------------- 14. Ctrl-C
def test_ctrl_c_prints_the_exact_resume_command(smoke_data_root, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    overrides = [*SMOKE, f"paths.root_dir={smoke_data_root}", "test=false",
                 "+callbacks.interrupt._target_=tests.helpers.interrupt.InterruptAt",
                 "+callbacks.interrupt.epoch=2"]  # fmt: skip
    try:
        with pytest.raises(SystemExit) as info:
            train(compose_config("train", overrides, run))
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores Ctrl-C after
    assert info.value.code == 1
    err = capsys.readouterr().err
    last = run / "checkpoints" / "last.ckpt"
    assert "resume exactly where the last epoch ended with:" in err
    assert err.rstrip().endswith(f"ckpt_path={last}") and "python -m anomaly_vit.train" in err
    assert torch.load(last, weights_only=True)["epoch"] == 0  # epoch 1 finished, 2 interrupted
    assert not (run / LOCK_FILE).exists()


# ------------------------------------------------------------- 8. manifest rows outside
@pytest.fixture
def outside_manifest(tmp_path) -> Path:
    """A manifest with rows inside its folder, `../`, an absolute path outside, a symlink out."""
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for folder in (data, elsewhere):
        folder.mkdir()
    pixels = np.zeros((8, 8, 3), np.uint8)
    for name in ("a.png", "b.png"):
        Image.fromarray(pixels).save(data / name)
    for name in ("up.png", "abs.png", "target.png"):
        Image.fromarray(pixels).save(elsewhere / name)
    (data / "link.png").symlink_to(elsewhere / "target.png")
    rows = ["a.png,good,1", "b.png,scratch,2", "../elsewhere/up.png,good,3",
            f"{elsewhere / 'abs.png'},scratch,4", "link.png,good,5"]  # fmt: skip
    manifest = data / "manifest.csv"
    manifest.write_text("path,label,item_id\n" + "\n".join(rows) + "\n")
    return manifest


def test_manifest_rows_outside_its_folder_are_warned_by_default(outside_manifest, caplog) -> None:
    records = ManifestSource(csv_path=str(outside_manifest), name="real").scan()
    assert len(records) == 5
    (warning,) = [r.getMessage() for r in caplog.records if "outside its folder" in r.getMessage()]
    assert "lists 3 file(s) outside its folder" in warning
    assert all(f"line {n}:" in warning for n in (4, 5, 6)) and "line 2:" not in warning
    assert "data.sources.real.outside_folder=refuse" in warning


def test_manifest_rows_outside_its_folder_can_be_refused_or_allowed(
    outside_manifest, caplog
) -> None:
    with pytest.raises(ValueError, match="lists 3 file.s. outside its folder") as info:
        ManifestSource(csv_path=str(outside_manifest), name="real", outside_folder="refuse").scan()
    assert "data.sources.real.outside_folder=allow" in str(info.value)
    assert "\n" not in str(info.value)
    allowed = ManifestSource(csv_path=str(outside_manifest), name="real", outside_folder="allow")
    assert len(allowed.scan()) == 5
    assert not [r for r in caplog.records if "outside its folder" in r.getMessage()]


# ------------------------------------------------------- a bug: one line, traceback in the log
@pytest.mark.slow
def test_a_bug_is_one_line_on_the_console_and_a_traceback_in_the_run_log(tmp_path) -> None:
    """Across the process boundary (Hydra's run log): a callback built without its required
    argument is a bug of the config's code path, not a user error."""
    from tests.helpers import run_cli

    run = tmp_path / "run"
    result = run_cli("anomaly_vit.train", *SMOKE, f"paths.root_dir={tmp_path}", f"hydra.run.dir={run}",
                     "+callbacks.bug._target_=tests.helpers.interrupt.InterruptAt", check=False)  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-2000:]
    assert (
        "a bug in anomaly_vit" in errors[0]
        and f"the traceback is in {run / 'train.log'}" in errors[0]
    )
    assert "Traceback (most recent call last)" not in result.stderr
    assert "Traceback (most recent call last)" in (run / "train.log").read_text()

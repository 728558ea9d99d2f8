"""The error contract (`anomaly_vit.errors`): a user error is one line; a bug is one line too,
with its traceback in the run log; `verbose=true` shows it; a full or read-only disk says what
was kept."""

from __future__ import annotations

import errno
import logging

import pytest
from omegaconf import OmegaConf

from anomaly_vit.errors import (
    USER_ERRORS,
    ConfigError,
    ProjectError,
    UserError,
    task_wrapper,
    user_message,
)


@task_wrapper
def _task(cfg):
    raise cfg.error_factory()


def _cfg(error: BaseException, **keys):
    cfg = OmegaConf.create({"paths": {"output_dir": keys.pop("output_dir", "/nowhere")}, **keys})
    object.__setattr__(cfg, "error_factory", lambda: error)  # not a config value
    return cfg


def test_bare_value_and_key_errors_are_bugs_not_user_errors() -> None:
    assert (ProjectError,) == USER_ERRORS
    assert user_message(ValueError("x")) is None and user_message(KeyError("k")) is None
    assert user_message(ConfigError("data.x=1: use 2.")) == "data.x=1: use 2."


def test_a_bug_is_one_line_and_its_traceback_goes_to_the_run_log(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    log_file = tmp_path / "train.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        with pytest.raises(UserError) as info:
            _task(_cfg(KeyError("no_such_key"), verbose=False))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "a bug in anomaly_vit" in lines[0]
    assert f"the traceback is in {log_file}" in lines[0] and "Traceback" not in err
    logged = log_file.read_text()
    assert "Traceback (most recent call last)" in logged and "KeyError: 'no_such_key'" in logged
    assert info.value.message == lines[0].removeprefix("error: ")


def test_verbose_shows_the_traceback_instead(monkeypatch) -> None:
    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    with pytest.raises(KeyError):
        _task(_cfg(KeyError("k"), verbose=True))


def test_a_user_error_stays_one_line_without_a_traceback(monkeypatch, capsys) -> None:
    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    with pytest.raises(UserError):
        _task(_cfg(ConfigError("trainer.max_epochs=0: set a whole number >= 1."), verbose=False))
    err = capsys.readouterr().err
    assert "error: trainer.max_epochs=0: set a whole number >= 1." in err
    assert "a bug" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("code", "said"),
    [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "the file system is read-only")],
)
def test_a_full_or_read_only_disk_is_one_line_saying_what_was_kept(tmp_path, code, said) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    error = OSError(code, "boom", str(run / "metrics.csv"))
    message = user_message(error, OmegaConf.create({"paths": {"output_dir": str(run)}}))
    assert message.startswith(f"could not write {run / 'metrics.csv'}: {said}")
    assert message.endswith(f"kept intact in {run / 'checkpoints'}: last.ckpt.")
    fresh = OmegaConf.create({"paths": {"output_dir": str(tmp_path / "new")}})
    assert "no checkpoint had been written yet" in user_message(error, fresh)

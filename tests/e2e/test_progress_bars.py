"""Progress bars only on a terminal: a run whose stdout is a file or pipe (a job log, `> log`)
gets no carriage-return frames; with `trainer.enable_progress_bar=false` no bar callback is
given to Lightning (it refuses one then)."""

from __future__ import annotations

import io

import pytest

from anomaly_vit.callbacks.progress import GlobalEpochProgressBar
from anomaly_vit.cli.train import build_run, train
from anomaly_vit.guards import progress_bar_on, without_progress_bars
from tests.helpers import compose_config

BAR = "+callbacks.progress._target_=anomaly_vit.callbacks.progress.GlobalEpochProgressBar"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_on_only_when_asked_and_stdout_is_a_terminal() -> None:
    assert progress_bar_on(True, Terminal()) is True
    assert progress_bar_on(True, io.StringIO()) is False  # a file or pipe
    assert progress_bar_on(False, Terminal()) is False


def test_without_the_bar_its_callback_is_dropped_and_others_kept() -> None:
    bar, other = GlobalEpochProgressBar(), object()
    assert without_progress_bars([bar, other], False) == [other]
    assert without_progress_bars([bar, other], True) == [bar, other]


@pytest.mark.parametrize("asked", ["true", "false"])
def test_a_run_without_a_terminal_builds_no_bar(asked, smoke_data_root, tmp_path) -> None:
    overrides = ["debug=smoke", "callbacks.maps=null", f"paths.root_dir={smoke_data_root}",
                 BAR, f"trainer.enable_progress_bar={asked}"]  # fmt: skip
    run = build_run(compose_config("train", overrides, tmp_path / "run"))
    assert run["trainer"].progress_bar_callback is None
    assert not [c for c in run["trainer"].callbacks if isinstance(c, GlobalEpochProgressBar)]


def test_a_redirected_run_writes_no_carriage_return_frames(
    smoke_data_root, tmp_path, capfd
) -> None:
    overrides = ["debug=smoke", "callbacks.maps=null", f"paths.root_dir={smoke_data_root}",
                 BAR, "trainer.enable_progress_bar=true", "trainer.max_epochs=1", "test=false"]  # fmt: skip
    train(compose_config("train", overrides, tmp_path / "run"))
    out, err = capfd.readouterr()
    assert "Run written to" in out
    assert "\r" not in out and "\r" not in err

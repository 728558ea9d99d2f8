"""A sweep with a failed job: the report says why it failed, and the sweep exits 1."""

from __future__ import annotations

import json

import pytest
import yaml
from omegaconf import OmegaConf

from anomaly_vit.rundir import ERROR_TXT
from anomaly_vit.sweep.callback import SweepReport

REASON = "data.synthetic_fraction must be in [0, 1] (or null to use the raw weights), got 1.5."


def _job(sweep, n: int, fraction: str, ok: bool) -> None:
    folder = sweep / str(n)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"data.synthetic_fraction={fraction}"])
    )
    if ok:
        summary = {"test": {"test/balanced_acc": 0.75}, "best_score": {"val/balanced_acc": 0.7}}
        (folder / "summary.json").write_text(json.dumps(summary))
    else:
        (folder / ERROR_TXT).write_text(REASON + "\n")


def _config(sweep):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})


def test_a_failed_job_is_listed_with_its_reason_and_the_sweep_exits_1(tmp_path, capsys) -> None:
    _job(tmp_path, 0, "0.5", ok=True)
    _job(tmp_path, 1, "1.5", ok=False)
    with pytest.raises(SystemExit) as info:
        SweepReport().on_multirun_end(_config(tmp_path))
    assert info.value.code == 1
    report = (tmp_path / "sweep_summary.md").read_text()
    assert f"- job 1 (`data.synthetic_fraction=1.5`): {REASON}" in report
    assert "1 job(s) of the sweep failed (1)" in capsys.readouterr().err


def test_a_sweep_whose_jobs_all_worked_exits_normally(tmp_path) -> None:
    _job(tmp_path, 0, "0.5", ok=True)
    _job(tmp_path, 1, "0.25", ok=True)
    SweepReport().on_multirun_end(_config(tmp_path))
    assert "Failed jobs" not in (tmp_path / "sweep_summary.md").read_text()

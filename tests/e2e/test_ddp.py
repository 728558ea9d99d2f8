"""Lightning DDP under Hydra (`trainer=ddp_cpu`: 2 gloo processes): one complete run dir, rank 0
writes, ranks > 0 run this job only; in a multirun every job gets its own ranks, no relaunch."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.helpers import compose_config, run_cli
from tests.helpers.callbacks import DRAWS
from tests.helpers.overrides import DDP

CONTRACT = ["checkpoints/last.ckpt", "checkpoints/best.ckpt", "checkpoints/epoch_0001.ckpt", "metrics.csv",
            "curves.png", "split.csv", "summary.json", ".hydra/config.yaml", "train.log", "train_rank1.log"]  # fmt: skip


def _check_run(run_dir: Path, epochs: list[int]) -> dict:
    for name in CONTRACT:
        assert (run_dir / name).is_file(), f"missing {name}"
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]
    with (run_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == epochs  # one writer: no duplicated rows
    for row in rows:
        assert 0.5 < float(row["train/loss"]) < 3.0  # ~ln(4) for a barely trained 4-class model
        for key in ("train/acc", "val/acc", "val/balanced_acc"):
            assert 0.0 <= float(row[key]) <= 1.0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 <= summary["test"]["test/balanced_acc"] <= 1.0 and math.isfinite(
        summary["test"]["test/loss"]
    )
    assert summary["config"]["trainer"]["devices"] == 2
    rank1_log = (run_dir / "train_rank1.log").read_text()
    assert "run dir: " + str(run_dir) in rank1_log  # rank 1 trained in the same folder
    return summary


def test_child_command_runs_this_job_only(tmp_path):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from anomaly_vit.ddp import child_command

    job_dir = tmp_path / "multi" / "3"
    cfg = compose_config("train", ["trainer=ddp_cpu", "seed=2"], job_dir)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.runtime.output_dir = str(job_dir)
        cfg.hydra.runtime.cwd = str(tmp_path)
        cfg.hydra.overrides.hydra = [
            "hydra.sweep.dir=multi",
            "hydra/launcher=parallel",
            "hydra.verbose=true",
        ]
    HydraConfig.instance().set_config(cfg)
    command, cwd = child_command(1, "anomaly_vit.train")
    assert command[:3] == [sys.executable, "-m", "anomaly_vit.train"]
    assert command[3:] == ["trainer=ddp_cpu", "seed=2", "hydra.verbose=true", f'hydra.run.dir="{job_dir}"',
                           "hydra.mode=RUN", "hydra.output_subdir=null", f"hydra.job.name={cfg.hydra.job.name}_rank1"]  # fmt: skip
    assert cwd == str(tmp_path)


def test_end_job_restores_the_launcher_environment(monkeypatch):
    from anomaly_vit import ddp

    launcher = SimpleNamespace(
        observer=None, procs=[], environ_before={"LOCAL_RANK": None, "MASTER_PORT": "1"}
    )
    monkeypatch.setattr(ddp, "_launched", [launcher])
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_PORT", "29500")
    ddp.end_job()
    assert "LOCAL_RANK" not in os.environ and os.environ["MASTER_PORT"] == "1"
    assert ddp._launched == []


@pytest.fixture(scope="module")
def ddp_smoke_run(tmp_path_factory) -> tuple[Path, str]:
    """One `trainer=ddp_cpu` smoke run (2 processes, 2 epochs) that records its draws."""
    root = tmp_path_factory.mktemp("ddp")
    # no hydra.run.dir: the rank-1 child must not resolve ${now:...} into a second folder
    result = run_cli("anomaly_vit.train", *DDP, f"paths.root_dir={root}",
                     "+callbacks.draws._target_=tests.helpers.callbacks.RecordDraws")  # fmt: skip
    (run_dir,) = list((root / "outputs" / "runs").iterdir())
    return run_dir, result.stdout


@pytest.mark.slow
def test_ddp_cpu_smoke_writes_one_complete_run_dir(ddp_smoke_run):
    run_dir, stdout = ddp_smoke_run
    assert f"Run written to {run_dir}" in stdout
    _check_run(run_dir, [1, 2])


@pytest.mark.slow
def test_ddp_mix_draws_differ_between_epochs_and_keep_the_quotas(ddp_smoke_run):
    """Lightning wraps the MixSampler in a DistributedSamplerWrapper: its set_epoch must reach
    the MixSampler (lightning>=2.6.1), or every epoch repeats epoch 0's draws."""
    run_dir, _ = ddp_smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    weights = summary["data"]["mix_weights"]
    samples = summary["data"]["samples_per_epoch"]
    names = list(weights)  # source ids follow data.sources' order, as mix_weights does
    draws = {(rank, epoch): json.loads((run_dir / DRAWS / f"rank{rank}_epoch{epoch}.json").read_text())
             for rank in (0, 1) for epoch in (0, 1)}  # fmt: skip
    for rank in (0, 1):
        assert draws[rank, 0] != draws[rank, 1], f"rank {rank} drew the same samples twice"
    # the mix itself is drawn afresh (other images of each source), not only dealt otherwise
    assert sorted(draws[0, 0] + draws[1, 0]) != sorted(draws[0, 1] + draws[1, 1])
    for epoch in (0, 1):
        both = draws[0, epoch] + draws[1, epoch]
        # each rank gets half (an odd total is padded with one repeat, hence the 1.5 below)
        assert len(draws[0, epoch]) == len(draws[1, epoch]) == -(-samples // 2)
        per_source = {name: 0 for name in names}
        for _, source in both:
            per_source[names[source]] += 1
        for name, weight in weights.items():
            assert abs(per_source[name] - weight * samples) <= 1.5, (epoch, name, per_source)


@pytest.mark.slow
def test_ddp_cpu_in_a_multirun_runs_each_job_once(tmp_path):
    sweep_dir = tmp_path / "multi"
    run_cli("anomaly_vit.train", "-m", *DDP, f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep_dir}",
            "trainer.max_epochs=1", "seed=1,2")  # fmt: skip
    # children did not relaunch the sweep: exactly the two jobs, nothing under outputs/
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]
    assert not (tmp_path / "outputs").exists()
    for job, seed in (("0", 1), ("1", 2)):
        summary = _check_run(sweep_dir / job, [1])
        assert summary["config"]["seed"] == seed
        assert (
            yaml.safe_load((sweep_dir / job / ".hydra" / "overrides.yaml").read_text())[-1]
            == f"seed={seed}"
        )
    with (sweep_dir / "sweep_summary.csv").open() as handle:
        assert [r["seed"] for r in csv.DictReader(handle)] == ["1", "2"]

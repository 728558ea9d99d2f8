"""Sweeps: the report (table, CSV, plot) from a multirun folder, the value a sweeper gets back,
and real multiruns through the basic, joblib, submitit-local and Optuna paths."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from anomaly_vit.sweep import objective as objective_module
from anomaly_vit.sweep.report import main as report_main
from anomaly_vit.sweep.report import read_jobs, swept_keys, write_report
from tests.helpers import run_cli
from tests.helpers.overrides import ONE_EPOCH


def _fake_job(sweep_dir: Path, n: int, overrides: list[str], test_acc: float | None) -> None:
    job = sweep_dir / str(n)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if test_acc is not None:
        summary = {"global_epoch": 2, "fit": {"val/balanced_acc": test_acc - 0.05},
                   "test": {"test/balanced_acc": test_acc, "test/auroc": 0.9, "test/confusion": [[1]]},
                   "best_score": {"val/balanced_acc": test_acc}}  # fmt: skip
        (job / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def fake_sweep(tmp_path) -> Path:
    """3 ratios x 2 seeds; the job (ratio 1, seed 2) failed."""
    accs = {
        ("0", "1"): 0.70,
        ("0", "2"): 0.80,
        ("0.5", "1"): 0.90,
        ("0.5", "2"): 0.86,
        ("1", "1"): 0.60,
        ("1", "2"): None,
    }
    for n, ((ratio, seed), acc) in enumerate(accs.items()):
        _fake_job(
            tmp_path, n, ["debug=smoke", f"data.synthetic_fraction={ratio}", f"seed={seed}"], acc
        )
    return tmp_path


def test_report_averages_over_seeds_and_marks_failures(fake_sweep):
    jobs = read_jobs(fake_sweep)
    assert [j.name for j in jobs] == ["0", "1", "2", "3", "4", "5"]
    assert swept_keys(jobs) == ["data.synthetic_fraction", "seed"]
    paths = write_report(fake_sweep)

    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and [r["status"] for r in rows].count("failed") == 1
    assert list(rows[0])[:4] == ["job", "status", "data.synthetic_fraction", "seed"]
    assert (
        float(rows[2]["test/balanced_acc"]) == 0.9
        and float(rows[2]["best/val/balanced_acc"]) == 0.9
    )
    assert "test/confusion" not in rows[0]

    table = paths["md"].read_text()
    assert "| 0 | 2 | 0.750 ± 0.071 |" in table  # mean and sample std of 0.70, 0.80
    assert "| 0.5 | 2 | 0.880 ± 0.028 |" in table
    assert "| 1 | 1 (1 failed) | 0.600 |" in table  # one job: no spread shown
    assert "Best `test/balanced_acc`: `data.synthetic_fraction=0.5`: 0.880 ± 0.028 (n=2)." in table
    assert "6 jobs (1 failed)" in table and "Fixed: `debug=smoke`" in table
    assert paths["png"].stat().st_size > 10_000


def test_report_command_rebuilds_from_a_folder(fake_sweep, capsys):
    report_main([str(fake_sweep), "--metric", "test/auroc"])
    out = capsys.readouterr().out
    assert "| 0.5 | 2 | 0.900 ± 0.000 |" in out
    assert (fake_sweep / "sweep.png").is_file()
    with pytest.raises(SystemExit, match="holds no job folders"):
        report_main([str(fake_sweep / "0" / ".hydra")])


def test_objective_prefers_the_best_checkpoint_and_never_returns_nan(monkeypatch):
    results = {"fit": {"val/balanced_acc": 0.7}, "best_score": {"val/balanced_acc": 0.8}}
    assert objective_module.objective(results, "val/balanced_acc") == 0.8
    assert objective_module.objective({"fit": {"val/loss": 0.3}}, "val/loss") == 0.3
    assert objective_module.objective(results, None) is None
    monkeypatch.setattr(
        objective_module,
        "_hydra_cfg",
        lambda: OmegaConf.create({"sweeper": {"direction": "minimize"}}),
    )
    assert objective_module.objective({"fit": {"val/loss": math.nan}}, "val/loss") == math.inf
    monkeypatch.setattr(
        objective_module,
        "_hydra_cfg",
        lambda: OmegaConf.create({"sweeper": {"direction": "maximize"}}),
    )
    assert objective_module.objective(results, "val/missing") == -math.inf


@pytest.mark.slow
def test_three_job_sweep_in_parallel_writes_a_three_row_summary_and_a_plot(tmp_path):
    sweep_dir = tmp_path / "multi"
    # joblib runs the 3 jobs at once on fresh data: they also race to generate the demo set
    result = run_cli("anomaly_vit.train", "-m", *ONE_EPOCH, f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep_dir}",
                     "hydra/launcher=parallel", "hydra.launcher.n_jobs=3", "data.synthetic_fraction=0,0.5,1")  # fmt: skip
    with (sweep_dir / "sweep_summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["data.synthetic_fraction"], r["status"]) for r in rows] == [
        ("0", "ok"),
        ("0.5", "ok"),
        ("1", "ok"),
    ]
    for row, fraction in zip(rows, (0.0, 0.5, 1.0), strict=True):
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert summary["config"]["data"]["synthetic_fraction"] == fraction
        assert float(row["test/balanced_acc"]) == pytest.approx(
            summary["test"]["test/balanced_acc"]
        )
    table = (sweep_dir / "sweep_summary.md").read_text()
    assert (
        len(
            [
                line
                for line in table.splitlines()
                if line.startswith("| 0") or line.startswith("| 1")
            ]
        )
        == 3
    )
    assert (sweep_dir / "sweep.png").stat().st_size > 10_000
    assert "Sweep report:" in result.stdout


@pytest.mark.slow
def test_optuna_search_returns_the_best_validation_score(tmp_path):
    sweep_dir = tmp_path / "optuna"
    run_cli("anomaly_vit.train", "-m", "hparams_search=mix_lr", *ONE_EPOCH, f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=1")  # fmt: skip
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    (job,) = read_jobs(sweep_dir)
    assert 0.0 <= best["best_params"]["data.synthetic_fraction"] <= 1.0
    assert 1e-4 <= best["best_params"]["model.optimizer.lr"] <= 3e-3
    assert best["best_value"] == pytest.approx(job.metrics["best/val/balanced_acc"])
    assert (
        float(job.overrides["data.synthetic_fraction"])
        == best["best_params"]["data.synthetic_fraction"]
    )


@pytest.mark.slow
def test_optuna_search_survives_failing_trials(tmp_path):
    sweep_dir = tmp_path / "optuna"
    # every trial fails at once (an invalid mix): each scores -inf and the study still ends cleanly
    result = run_cli("anomaly_vit.train", "-m", "hparams_search=mix_lr", *ONE_EPOCH, f"paths.root_dir={tmp_path}",
                     f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=2", "data.synthetic_fraction=1.5")  # fmt: skip
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == -math.inf
    assert [job.failed for job in read_jobs(sweep_dir)] == [True, True]
    assert "2 jobs (2 failed)" in (sweep_dir / "sweep_summary.md").read_text()
    assert "data.synthetic_fraction must be in [0, 1]" in result.stdout + result.stderr


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_job(tmp_path):
    sweep_dir = tmp_path / "submitit"
    run_cli("anomaly_vit.train", "-m", *ONE_EPOCH, f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep_dir}",
            "hydra/launcher=local", "hydra.launcher.timeout_min=10", "seed=3")  # fmt: skip
    summary = json.loads((sweep_dir / "0" / "summary.json").read_text())
    assert summary["config"]["seed"] == 3 and 0.0 <= summary["test"]["test/balanced_acc"] <= 1.0
    assert list((sweep_dir / ".submitit").glob("*/*_log.out"))  # it ran through submitit
    with (sweep_dir / "sweep_summary.csv").open() as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["ok"]


def test_two_key_sweep_gets_a_grid_and_a_heatmap(tmp_path):
    """2 real fractions x 2 recipes x 2 seeds; recipe 'painted' at 0.25 failed on seed 2."""
    accs = {("0.25", "real", "1"): 0.60, ("0.25", "real", "2"): 0.64,
            ("0.25", "painted", "1"): 0.70, ("0.25", "painted", "2"): None,
            ("1", "real", "1"): 0.90, ("1", "real", "2"): 0.92,
            ("1", "painted", "1"): 0.88, ("1", "painted", "2"): 0.84}  # fmt: skip
    for n, ((fraction, recipe, seed), acc) in enumerate(accs.items()):
        overrides = [f"data.real_fraction={fraction}", f"experiment={recipe}", f"seed={seed}"]
        _fake_job(tmp_path, n, overrides, acc)
    paths = write_report(tmp_path)
    table = paths["md"].read_text()
    assert "| 0.25 | painted | 1 (1 failed) | 0.700 |" in table  # one row per pair of values
    assert "rows `data.real_fraction`, columns `experiment`" in table
    assert "| `data.real_fraction` \\ `experiment` | painted | real |" in table
    assert "| 0.25 | 0.700 | 0.620 ± 0.028 |" in table
    assert "| 1 | 0.860 ± 0.028 | 0.910 ± 0.014 |" in table
    assert "| 1 | 0.900 ± 0.000 | 0.900 ± 0.000 |" in table  # the test/auroc grid
    with paths["csv"].open() as handle:
        assert list(csv.DictReader(handle).fieldnames)[2:5] == [
            "data.real_fraction", "experiment", "seed"
        ]  # fmt: skip
    assert paths["heatmap"].name == "sweep_heatmap.png"
    assert paths["heatmap"].stat().st_size > 10_000 and paths["png"].stat().st_size > 10_000


def test_one_key_sweep_has_no_grid(fake_sweep):
    paths = write_report(fake_sweep)
    assert "heatmap" not in paths and not (fake_sweep / "sweep_heatmap.png").exists()
    assert "rows `" not in paths["md"].read_text()


@pytest.mark.slow
def test_two_key_multirun_writes_a_two_key_summary_grid_and_heatmap(tmp_path):
    sweep_dir = tmp_path / "multi"
    run_cli("anomaly_vit.train", "-m", *ONE_EPOCH, f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep_dir}",
            "data.real_fraction=0.5,1", "data.mix_mode=replace,add")  # fmt: skip
    with (sweep_dir / "sweep_summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["data.real_fraction"], r["data.mix_mode"], r["status"]) for r in rows) == [
        ("0.5", "add", "ok"), ("0.5", "replace", "ok"), ("1", "add", "ok"), ("1", "replace", "ok")
    ]  # fmt: skip
    for row in rows:
        data = json.loads((Path(row["run_dir"]) / "summary.json").read_text())["config"]["data"]
        assert float(data["real_fraction"]) == float(row["data.real_fraction"])
        assert data["mix_mode"] == row["data.mix_mode"]
    table = (sweep_dir / "sweep_summary.md").read_text()
    assert "rows `data.real_fraction`, columns `data.mix_mode`" in table
    assert (sweep_dir / "sweep_heatmap.png").stat().st_size > 10_000

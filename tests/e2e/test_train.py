"""The run-directory contract, written by a real training run, and eval reproducing its numbers."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from tests.helpers import run_cli

HYDRA_FILES = [".hydra/config.yaml", ".hydra/overrides.yaml"]  # written by the CLI only
CONTRACT = [
    "checkpoints/last.ckpt",
    "checkpoints/best.ckpt",
    "checkpoints/epoch_0001.ckpt",
    "checkpoints/epoch_0002.ckpt",
    "metrics.csv",
    "curves.png",
    "split.csv",
    "summary.json",
]
METRIC_COLUMNS = [
    "epoch",
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "val/balanced_acc",
    "val/auroc",
    "lr",
]


def _check_contract(run_dir, cli=False):
    for name in CONTRACT + (HYDRA_FILES if cli else []):
        assert (run_dir / name).is_file(), f"missing {name}"
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    with (run_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for column in METRIC_COLUMNS:
        assert column in rows[0], column
        assert all(math.isfinite(float(r[column])) for r in rows)
    assert all(0.0 <= float(r["val/balanced_acc"]) <= 1.0 for r in rows)
    with (run_dir / "split.csv").open() as handle:
        split_rows = list(csv.DictReader(handle))
    # the split is by item, at the configured ratios (0.6 / 0.2 / 0.2 of the real items)
    items = {split: {r["item_id"] for r in split_rows if r["split"] == split and r["source"] == "real"}
             for split in ("train", "val", "test")}  # fmt: skip
    assert not (
        items["train"] & items["val"]
        or items["train"] & items["test"]
        or items["val"] & items["test"]
    )
    n_items = sum(len(v) for v in items.values())
    for split, ratio in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        assert abs(len(items[split]) - ratio * n_items) <= 0.05 * n_items + 4, (split, n_items)
    # derived images (composites, painted) stay with their item; painted only from train items
    assert {r["split"] for r in split_rows if r["source"] == "painted"} == {"train"}
    assert {r["source"] for r in split_rows} == {"real", "composite", "painted"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["classes"][0] == "good" and len(summary["classes"]) == 4
    assert summary["best_checkpoint"].endswith("best.ckpt")
    assert 0.0 <= summary["test"]["test/balanced_acc"] <= 1.0
    assert summary["data"]["test"] and all(k.startswith("real/") for k in summary["data"]["test"])
    # the test metrics were computed on exactly the real test images split.csv lists
    test_rows = [r for r in split_rows if r["split"] == "test" and r["source"] == "real"]
    assert sum(summary["data"]["test"].values()) == len(test_rows)
    assert sum(sum(row) for row in summary["test"]["test/confusion"]) == len(test_rows)
    return summary


def test_smoke_run_writes_the_contract(smoke_run):
    summary = _check_contract(smoke_run)
    checkpoint = torch.load(smoke_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["anomaly_vit"]["config"]["data"]["synthetic_fraction"] == 0.5
    # the stored threshold is the one validation chose (its choice: tests/unit/model/test_threshold.py)
    assert float(checkpoint["state_dict"]["defect_threshold"]) == pytest.approx(
        summary["test"]["test/defect_threshold"], abs=1e-6
    )
    assert summary["global_epoch"] == 2


@pytest.mark.slow
def test_cli_train_then_eval_reproduces_test_metrics(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "anomaly_vit.train", "debug=smoke", f"paths.root_dir={tmp_path}", f"hydra.run.dir={run_dir}"
    )
    assert f"Run written to {run_dir}" in result.stdout
    summary = _check_contract(run_dir, cli=True)
    eval_dir = tmp_path / "eval"
    run_cli(
        "anomaly_vit.eval",
        f"ckpt_path={run_dir}/checkpoints/best.ckpt",
        f"hydra.run.dir={eval_dir}",
    )
    evaluated = json.loads((eval_dir / "summary.json").read_text())
    assert (eval_dir / "confusion.png").is_file()
    assert evaluated["test"]["test/confusion"] == summary["test"]["test/confusion"]
    for key in (
        "test/acc",
        "test/balanced_acc",
        "test/f1",
        "test/loss",
        "test/auroc",
        "test/defect_threshold",
    ):
        assert evaluated["test"][key] == pytest.approx(summary["test"][key], abs=1e-6), key


@pytest.mark.slow
def test_cli_user_error_is_one_clear_line(tmp_path):
    result = run_cli(
        "anomaly_vit.train",
        "debug=smoke",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path}/run",
        "data.synthetic_fraction=1.5",
        check=False,
    )
    assert result.returncode == 1
    assert "data.synthetic_fraction must be in [0, 1]" in result.stderr
    assert "Traceback" not in result.stderr

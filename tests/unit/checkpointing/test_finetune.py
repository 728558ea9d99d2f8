"""Fine-tune: weights only from a parent checkpoint, epochs numbered on from the parent's global
epoch everywhere (metrics.csv, checkpoint names, TensorBoard), lineage recorded, head handling."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch

from anomaly_vit.checkpointing.finetune import apply_finetune
from anomaly_vit.model.module import ViTClassifier
from anomaly_vit.rundir import lineage_rows
from tests.helpers import compose_config, tensorboard_steps


def _model_like(checkpoint: dict, **changes) -> ViTClassifier:
    hparams = checkpoint["hyper_parameters"]
    return ViTClassifier(**{**hparams, "net": {**hparams["net"], "pretrained": False}, **changes})


@pytest.fixture(scope="module")
def parent_ckpt(smoke_run) -> Path:
    return smoke_run / "checkpoints" / "epoch_0002.ckpt"


@pytest.mark.slow
def test_finetune_numbers_epochs_from_the_parent_and_records_lineage(
    smoke_run, smoke_data_root, parent_ckpt, tmp_path, capfd
):
    from anomaly_vit.train import train

    run_dir = tmp_path / "child"
    cfg = compose_config("train", [
        "debug=smoke", f"paths.root_dir={smoke_data_root}", f"finetune_from={parent_ckpt}",
        "trainer.max_epochs=2", "callbacks.maps=null", "callbacks.checkpoint_periodic.every_n_epochs=3",
        "data.synthetic_fraction=0.25", "model.optimizer.lr=5e-4", "trainer.enable_progress_bar=true",
        "callbacks.progress={_target_:anomaly_vit.callbacks.progress.GlobalEpochProgressBar}",
    ], run_dir)  # fmt: skip
    train(cfg)
    bar = "".join(capfd.readouterr())
    assert "Epoch 3/4" in bar and "Epoch 4/4" in bar and "Epoch 0" not in bar  # global epochs

    with (run_dir / "metrics.csv").open() as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [3, 4]
    # every_n_epochs counts GLOBAL epochs: 3 is a multiple of 3, local epoch 1 is not
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt")) == [
        "best.ckpt",
        "epoch_0003.ckpt",
        "last.ckpt",
    ]
    assert tensorboard_steps(run_dir, "train/loss") == [3, 4]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_epoch"] == 4
    assert summary["config"]["data"]["synthetic_fraction"] == 0.25
    (parent,) = summary["lineage"]
    assert parent["global_epoch"] == 2 and parent["ckpt_path"] == str(parent_ckpt.resolve())
    assert parent["run_dir"] == str(smoke_run.resolve())
    assert parent["config"]["data"]["synthetic_fraction"] == 0.5 and parent["config"]["seed"] == 42
    assert parent["head_reinitialised"] is False

    child = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    parent_state = torch.load(parent_ckpt, weights_only=True)
    assert child["anomaly_vit"]["lineage"] == summary["lineage"]
    assert (
        child["anomaly_vit"]["global_epoch"] == 4 and child["hyper_parameters"]["epoch_offset"] == 2
    )
    # a fresh optimizer: its step count is this run's, not the parent's plus this run's
    assert float(child["optimizer_states"][0]["state"][0]["step"]) == child["global_step"]
    assert child["global_step"] == parent_state["global_step"]
    # curves.png draws the parent's epochs (in grey) before this run's
    assert [r["epoch"] for r in lineage_rows(summary["lineage"])] == [1.0, 2.0]
    assert (run_dir / "curves.png").is_file()


def test_same_classes_load_every_weight(parent_ckpt, caplog):
    checkpoint = torch.load(parent_ckpt, weights_only=True)
    model = _model_like(checkpoint)
    with caplog.at_level(logging.WARNING):
        apply_finetune(model, str(parent_ckpt))
    assert "re-initialised" not in caplog.text
    for key, value in model.state_dict().items():
        if key.startswith("net."):
            assert torch.equal(value, checkpoint["state_dict"][key]), key
    assert model.epoch_offset == 2 and model.global_epoch == 3


def test_changed_class_set_reinitialises_the_head(parent_ckpt, caplog):
    checkpoint = torch.load(parent_ckpt, weights_only=True)
    classes = [*checkpoint["hyper_parameters"]["classes"], "dent"]
    model = _model_like(checkpoint, classes=classes)
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("net.head.")}
    with caplog.at_level(logging.WARNING):
        apply_finetune(model, str(parent_ckpt))
    assert "class set changed" in caplog.text and "re-initialised" in caplog.text
    state = model.state_dict()
    assert state["net.head.weight"].shape[0] == 5
    assert all(torch.equal(state[k], v) for k, v in fresh_head.items())  # untouched fresh head
    assert torch.equal(
        state["net.blocks.0.attn.qkv.weight"],
        checkpoint["state_dict"]["net.blocks.0.attn.qkv.weight"],
    )
    assert model.lineage[-1]["head_reinitialised"] is True
    assert model.lineage[-1]["classes"] == checkpoint["hyper_parameters"]["classes"]


def test_other_architecture_is_one_clear_error(parent_ckpt):
    checkpoint = torch.load(parent_ckpt, weights_only=True)
    model = _model_like(checkpoint, net={**checkpoint["hyper_parameters"]["net"], "embed_dim": 48})
    with pytest.raises(ValueError, match="finetune_from=.*different architecture"):
        apply_finetune(model, str(parent_ckpt))


def test_resuming_a_finetune_keeps_its_epoch_numbers(parent_ckpt):
    checkpoint = torch.load(parent_ckpt, weights_only=True)
    model = _model_like(checkpoint)
    lineage = [{"global_epoch": 200, "run_dir": "/parent"}]
    model.on_load_checkpoint({"anomaly_vit": {"epoch_offset": 200, "lineage": lineage}})
    assert model.epoch_offset == 200 and model.global_epoch == 201 and model.lineage == lineage
    assert model.hparams.epoch_offset == 200


def test_lineage_rows_take_each_parent_up_to_its_fork(tmp_path):
    from anomaly_vit.callbacks.metrics_writer import write_metrics_csv

    grand, parent = tmp_path / "grand", tmp_path / "parent"
    grand.mkdir()
    parent.mkdir()
    write_metrics_csv(grand / "metrics.csv", [{"epoch": e, "train/loss": 1.0} for e in range(1, 6)])
    write_metrics_csv(
        parent / "metrics.csv", [{"epoch": e, "train/loss": 2.0} for e in range(4, 9)]
    )
    lineage = [{"run_dir": str(grand), "global_epoch": 3}, {"run_dir": str(parent), "global_epoch": 6},
               {"run_dir": str(tmp_path / "moved_away"), "global_epoch": 9}]  # fmt: skip
    rows = lineage_rows(lineage)
    assert [(r["epoch"], r["train/loss"]) for r in rows] == [
        (1, 1.0),
        (2, 1.0),
        (3, 1.0),
        (4, 2.0),
        (5, 2.0),
        (6, 2.0),
    ]

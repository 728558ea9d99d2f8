"""Self-supervised pretraining: the objectives learn, masked pixels never leak into visible
tokens, a smoke pretrain writes the run-dir contract, and a fine-tune from it loads the encoder
(every key accounted for), re-initialises the head and numbers its epochs after the pretraining."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_vit.checkpointing.finetune import apply_finetune
from anomaly_vit.model.module import ViTClassifier
from anomaly_vit.ssl.data import PretrainData, load_unlabelled
from anomaly_vit.ssl.module import SelfSupervisedViT
from anomaly_vit.ssl.objectives import blank_masked_pixels, patchify, random_patch_mask
from tests.helpers import compose_config, run_cli, tensorboard_steps
from tests.helpers.data import TINY_NET, image_file

CLASSES = ["good", "scratch"]
CONV_NET = {**TINY_NET, "stem": "conv", "global_pool": "max", "embed_dim": 48, "num_heads": 2}


def stripes(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 [n, 3, size, size]: coloured stripes of random period, phase and direction."""
    rng = np.random.default_rng(seed)
    coords = np.arange(size)
    images = []
    for _ in range(n):
        period, phase = rng.uniform(6, 14), rng.uniform(0, 2 * np.pi)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * coords / period + phase)
        plane = (
            np.tile(wave, (size, 1)) if rng.random() < 0.5 else np.tile(wave[:, None], (1, size))
        )
        colour = rng.uniform(60, 255, 3)
        images.append(plane[None] * colour[:, None, None])
    return torch.from_numpy(np.stack(images)).to(torch.uint8)


# measured (60 AdamW steps, seed 0): MAE's normalised-pixel MSE falls by more than half, SimMIM's
# L1 on raw pixels from 1.17 to 0.90
FALLS_BELOW = {"mae": 0.5, "simmim": 0.85}


@pytest.mark.parametrize("kind", ["mae", "simmim"])
def test_objective_loss_falls_on_a_tiny_generated_set(kind):
    torch.manual_seed(0)
    model = SelfSupervisedViT(CLASSES, CONV_NET, objective={"kind": kind})
    images = stripes(16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def held_out_loss() -> float:  # the same masks before and after
        with torch.no_grad():
            return float(model.ssl_loss(images, torch.Generator().manual_seed(7)))

    before = held_out_loss()
    model.train()
    for _ in range(60):
        optimizer.zero_grad()
        model.ssl_loss(images).backward()
        optimizer.step()
    model.eval()
    after = held_out_loss()
    assert after < FALLS_BELOW[kind] * before, (kind, before, after)


def test_masked_pixels_never_reach_visible_tokens_through_the_conv_stem():
    torch.manual_seed(0)
    vit = SelfSupervisedViT(CLASSES, CONV_NET).net.eval()
    images = torch.randn(2, 3, 32, 32)
    mask = random_patch_mask(2, 16, 0.75, torch.Generator().manual_seed(1))
    changed = images + 5.0 * (mask.view(2, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3))
    visible = ~mask

    def tokens(x: torch.Tensor, blank: bool) -> torch.Tensor:
        x = blank_masked_pixels(x, mask, (8, 8)) if blank else x
        return vit.patch_embed(x)

    with torch.no_grad():
        leak = (tokens(images, False) - tokens(changed, False))[visible].abs().max()
        blanked = (tokens(images, True) - tokens(changed, True))[visible].abs().max()
    assert leak > 1e-3  # without blanking, the 15 px receptive field carries masked pixels over
    assert blanked == 0.0
    assert patchify(images, (8, 8)).shape == (2, 16, 8 * 8 * 3)


def test_unlabelled_folder_loads_every_image_and_skips_bad_files(tmp_path, caplog):
    for i in range(3):
        image_file(tmp_path / "u" / f"sub{i % 2}" / f"{i}.png", value=40 * i, size=20)
    (tmp_path / "u" / "broken.png").write_bytes(b"not a png")
    data = load_unlabelled(tmp_path / "u", (32, 32), "squash")
    assert len(data) == 3 and data[0]["image"].shape == (3, 32, 32) and set(data[0]) == {"image"}
    assert "broken.png" in caplog.text
    with pytest.raises(FileNotFoundError, match="pretrain.unlabelled_dir="):
        load_unlabelled(tmp_path / "missing", (32, 32), "squash")


@pytest.fixture(scope="module")
def pretrain_run(smoke_data_root, tmp_path_factory) -> Path:
    """A 2-epoch smoke pretraining through the CLI, with 5 unlabelled images; its run dir."""
    unlabelled = tmp_path_factory.mktemp("unlabelled")
    rng = np.random.default_rng(0)
    for i in range(5):
        image = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
        Image.fromarray(image).save(unlabelled / f"{i}.jpg")
    run_dir = tmp_path_factory.mktemp("pretrain") / "run"
    run_cli(
        "anomaly_vit.pretrain", "debug=smoke", f"paths.root_dir={smoke_data_root}",
        f"pretrain.unlabelled_dir={unlabelled}", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    return run_dir


@pytest.mark.slow
def test_smoke_pretrain_writes_the_run_dir_contract(pretrain_run):
    for name in (".hydra/config.yaml", "curves.png", "split.csv", "data_report.json",
                 "rollouts/epoch_0002.png", "rollouts/evolution.png"):  # fmt: skip
        assert (pretrain_run / name).is_file(), name
    names = sorted(p.name for p in (pretrain_run / "checkpoints").glob("*.ckpt"))
    assert names == ["best.ckpt", "epoch_0001.ckpt", "epoch_0002.ckpt", "last.ckpt"]
    with (pretrain_run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(float(r["train/loss"]) > 0 and float(r["val/loss"]) > 0 for r in rows)
    assert "maps/rollout/energy" in rows[0] and "train/acc" not in rows[0]  # no labels read
    assert tensorboard_steps(pretrain_run, "train/loss") == [1, 2]
    dump = np.load(pretrain_run / "rollouts" / "epoch_0002.npz")
    assert list(dump["kinds"]) == ["rollout"] and dump["maps_rollout"].shape[1:] == (64, 64)
    summary = json.loads((pretrain_run / "summary.json").read_text())
    assert summary["task"] == "pretrain" and summary["objective"] == "mae"
    assert summary["global_epoch"] == 2 and summary["data"]["unlabelled"] == 5
    # every source's training images (synthetic too), plus each unlabelled image once an epoch
    train = summary["data"]["train"]
    assert {k.split("/")[0] for k in train} == {"real", "composite", "painted"}
    assert summary["data"]["images_per_epoch"] == summary["data"]["samples_per_epoch"] + 5
    checkpoint = torch.load(pretrain_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["anomaly_vit"]["pretrain"]["objective"] == "mae"


@pytest.mark.slow
def test_pretrain_batches_hold_training_images_only(smoke_data_root, tmp_path):
    from anomaly_vit.build import build_datamodule

    cfg = compose_config("pretrain", ["debug=smoke", f"paths.root_dir={smoke_data_root}"], tmp_path)
    data = build_datamodule(cfg.data, tmp_path)
    wrapped = PretrainData(data)
    wrapped.trainer = None
    wrapped.setup("fit")
    train_images = data.datasets["train"].images_nchw
    held_out = torch.cat([data.datasets[s].images_nchw for s in ("val", "test")])
    seen = torch.cat([batch["image"] for batch in wrapped.train_dataloader()])
    assert set(next(iter(wrapped.train_dataloader()))) == {"image"}  # labels never loaded
    flat = {bytes(image.numpy()) for image in train_images}
    assert all(bytes(image.numpy()) in flat for image in seen)
    assert not {bytes(image.numpy()) for image in held_out} & {bytes(i.numpy()) for i in seen}


@pytest.mark.slow
def test_finetune_from_pretraining_loads_the_encoder_and_counts_on(
    pretrain_run, smoke_data_root, tmp_path, caplog
):
    from anomaly_vit.train import train

    parent = pretrain_run / "checkpoints" / "last.ckpt"
    stored = torch.load(parent, weights_only=True)["state_dict"]
    # in memory: the encoder is the pretrained one, the head a fresh one, every key accounted for
    hparams = torch.load(parent, weights_only=True)["hyper_parameters"]
    torch.manual_seed(3)
    model = ViTClassifier(classes=hparams["classes"], net=hparams["net"])
    fresh_head = model.net.head.weight.clone()
    apply_finetune(model, str(parent))
    state = model.state_dict()
    accounts = model.lineage[-1]
    encoder = [k for k in state if k.startswith("net.") and not k.startswith("net.head.")]
    assert sorted(accounts["loaded_keys"]) == sorted(encoder)
    assert all(torch.equal(state[k], stored[k]) for k in encoder)
    assert set(accounts["loaded_keys"]) | set(accounts["dropped_keys"]) == set(stored)
    assert any(k.startswith("objective.decoder") for k in accounts["dropped_keys"])
    assert {"net.head.weight", "net.head.bias"} <= set(accounts["reinitialised_keys"])
    assert torch.equal(state["net.head.weight"], fresh_head)
    assert not torch.equal(state["net.head.weight"], stored["net.head.weight"])
    assert accounts["head_reinitialised"] is True and model.global_epoch == 3

    run_dir = tmp_path / "child"
    cfg = compose_config("train", [
        "debug=smoke", f"paths.root_dir={smoke_data_root}", f"finetune_from={parent}",
        "trainer.max_epochs=1", "callbacks.maps=null", "test=false",
    ], run_dir)  # fmt: skip
    train(cfg)
    with (run_dir / "metrics.csv").open() as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [3]
    assert (run_dir / "checkpoints" / "epoch_0003.ckpt").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    (lineage,) = summary["lineage"]
    assert lineage["pretrain"] == "mae" and lineage["global_epoch"] == 2
    assert lineage["run_dir"] == str(pretrain_run.resolve())
    assert summary["global_epoch"] == 3


@pytest.mark.slow
def test_finetune_from_a_pretraining_of_another_architecture_is_one_clear_error(pretrain_run):
    parent = pretrain_run / "checkpoints" / "last.ckpt"
    hparams = torch.load(parent, weights_only=True)["hyper_parameters"]
    deeper = ViTClassifier(
        hparams["classes"], {**hparams["net"], "depth": hparams["net"]["depth"] + 1}
    )
    with pytest.raises(ValueError, match="pretrained with a different architecture"):
        apply_finetune(deeper, str(parent))
    wider = ViTClassifier(hparams["classes"], {**hparams["net"], "embed_dim": 48})
    with pytest.raises(ValueError, match="different architecture"):
        apply_finetune(wider, str(parent))


def test_study_counts_classification_epochs_after_the_pretraining(tmp_path, capsys):
    from anomaly_vit.callbacks.metrics_writer import write_metrics_csv
    from anomaly_vit.rundir import write_json
    from anomaly_vit.ssl.study import main, study_row

    accuracies = {"scratch": [0.3, 0.6, 0.85, 0.91, 0.93], "finetuned": [0.7, 0.92, 0.95]}
    first = {"scratch": 1, "finetuned": 21}  # the fine-tune continues from pretraining epoch 20
    for name, values in accuracies.items():
        rows = [
            {"epoch": first[name] + i, "val/balanced_acc": v, "val/auroc": 0.9}
            for i, v in enumerate(values)
        ]
        write_metrics_csv(tmp_path / name / "metrics.csv", rows)
    write_json(tmp_path / "finetuned" / "summary.json", {"test": {"test/auroc": 0.97}})
    scratch, finetuned = (study_row(tmp_path / name) for name in accuracies)
    assert scratch["epochs_to_0.9"] == 4 and scratch["parent_epochs"] == 0
    assert finetuned["epochs_to_0.9"] == 2 and finetuned["parent_epochs"] == 20
    assert finetuned["test_auroc"] == 0.97 and scratch["test_auroc"] is None
    assert study_row(tmp_path / "scratch", threshold=0.99)["epochs_to_0.99"] is None
    main([str(tmp_path / "scratch"), str(tmp_path / "finetuned")])
    assert "| finetuned | 20 | 3 | 2 |" in capsys.readouterr().out
    (tmp_path / "train.log").write_text("not a run dir")
    with pytest.raises(SystemExit, match=r"train\.log has no metrics\.csv"):
        main([str(tmp_path / "scratch"), str(tmp_path / "train.log")])


def test_the_printed_finetune_command_repeats_the_data_model_and_seed_overrides():
    from anomaly_vit.cli.pretrain import finetune_command

    overrides = [
        "data=manifest",
        "data.manifest=m.csv",
        "seed=3",
        "trainer.max_epochs=10",
        "ssl=simmim",
        "+model.net.depth=4",
        "run_name=ssl",
    ]
    assert finetune_command("/runs/p", overrides) == (
        "python -m anomaly_vit.train data=manifest data.manifest=m.csv seed=3 +model.net.depth=4"
        " finetune_from=/runs/p/checkpoints/last.ckpt"
    )

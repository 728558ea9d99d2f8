"""Real-data keys: one key to point at data, letterbox geometry, binary task, class balance."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.data.labels import Balance, resolve_balance
from anomaly_vit.data.records import Record
from anomaly_vit.data.resize import ResizeMode, fit_image, fit_mask, placement
from anomaly_vit.data.sampler import MixSampler
from tests.helpers import compose_config
from tests.helpers.overrides import TINY_REAL
from tests.helpers.real_set import make_real_set


@pytest.fixture(scope="module")
def real_set(tmp_path_factory) -> Path:
    return make_real_set(tmp_path_factory.mktemp("real_set"))


# ---------------------------------------------------------------------------------- geometry
def test_letterbox_keeps_image_and_mask_aligned_and_the_aspect_ratio():
    image = np.zeros((40, 20, 3), dtype=np.uint8)
    mask = np.zeros((40, 20), dtype=bool)
    image[10:14, 4:8] = 255  # a bright square and its mask at the same pixels
    mask[10:14, 4:8] = True
    fitted, fitted_mask = (
        fit_image(image, (20, 20), ResizeMode.LETTERBOX),
        fit_mask(mask, (20, 20), ResizeMode.LETTERBOX),
    )
    where = placement((40, 20), (20, 20), ResizeMode.LETTERBOX)
    assert where.scaled_hw == (20, 10) and where.offset_yx == (0, 5)  # half size, centred
    ys, xs = np.nonzero(fitted_mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (5, 6, 7, 8)
    assert (fitted[fitted_mask][:, 0] > 150).all()  # the bright square lies under its mask
    assert (fitted[~fitted_mask][:, 0] < 100).all()
    assert (fitted[:, :5] == 0).all() and (fitted[:, 15:] == 0).all()  # padding, not stretch
    assert where.to_original(5.0, 7.0) == (10.0, 4.0)  # back to original pixels


def test_crop_and_squash_geometry():
    mask = np.zeros((40, 20), dtype=bool)
    mask[0:4, :] = True  # a band at the top: a centre crop of a tall image cuts it away
    assert not fit_mask(mask, (20, 20), ResizeMode.CROP).any()
    squashed = fit_mask(mask, (20, 20), ResizeMode.SQUASH)
    assert squashed[:2].all() and not squashed[2:].any()  # stretched: 4 of 40 rows -> 2 of 20


# ------------------------------------------------------------------------------ class balance
def test_balanced_draws_give_equal_class_counts_inside_each_source_quota():
    indices = {"real": list(range(0, 100)), "painted": list(range(100, 130))}
    label_of_index = {i: int(i % 10 == 0) for i in range(100)} | {i: 1 for i in range(100, 130)}
    sampler = MixSampler(
        indices, {"real": 0.8, "painted": 0.2}, 100, seed=3, label_of_index=label_of_index
    )
    for epoch in range(2):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        real = Counter(label_of_index[i] for i in drawn if i < 100)
        assert real == {0: 40, 1: 40}  # 10 defects drawn 4x each round-robin, 90 good 40 times
        assert sum(1 for i in drawn if i >= 100) == 20  # the mix share still holds exactly
    plain = MixSampler(indices, {"real": 0.8, "painted": 0.2}, 100, seed=3)
    assert Counter(label_of_index[i] for i in plain if i < 100)[1] < 15  # unbalanced: ~8 defects


def test_auto_balance_turns_on_for_imbalanced_classes_and_says_why():
    mode, why = resolve_balance(Balance.AUTO, {"good": 90, "defect": 10}, 1.5)
    assert mode is Balance.SAMPLER and "9.0 > 1.5" in why
    mode, why = resolve_balance(Balance.AUTO, {"good": 50, "defect": 45}, 1.5)
    assert mode is Balance.NONE
    assert resolve_balance(Balance.LOSS, {"good": 90, "defect": 10}, 1.5)[0] is Balance.LOSS


# ------------------------------------------------------------------------- configs and labels
def _datamodule(cfg, tmp_path):
    import hydra

    dm = hydra.utils.instantiate(cfg.data, output_dir=str(tmp_path))
    dm.prepare()
    return dm


@pytest.mark.parametrize("layout", ["manifest", "folder", "paired"])
def test_one_key_points_at_real_data(layout, real_set, tmp_path):
    key = {
        "manifest": f"data.manifest={real_set / 'manifest.csv'}",
        "folder": f"data.root={real_set / 'folder'}",
        "paired": f"data.root={real_set / 'paired'}",
    }[layout]
    cfg = compose_config("train", [f"data={layout}", key], tmp_path)
    assert cfg.model.name == "vit_real" and cfg.data.task == "binary"
    dm = _datamodule(cfg, tmp_path)
    assert dm.classes == ["good", "defect"]  # from the data; painted adds no class of its own
    dm.setup()
    report = json.loads((tmp_path / "data_report.json").read_text())
    assert report["task"] == "binary" and report["balance"]["mode"] == "sampler"
    assert "largest/smallest" in report["balance"]["reason"]
    image = dm.datasets["train"][0]["image"]
    assert tuple(image.shape[-2:]) == (320, 128)  # img_size=auto: the photos' 1:2.5 aspect
    if layout != "paired":  # the masks come along, for the mask loss
        assert dm.datasets["train"].masks_nhw.any()


def test_binary_task_maps_every_defect_class_and_the_report_keeps_the_originals(tmp_path):
    root = tmp_path / "multi"
    for label, n in (("good", 6), ("scratch", 3), ("dent", 3)):
        for i in range(n):
            path = root / label / f"{label}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(path)
    cfg = compose_config("train", ["data=folder", f"data.root={root}"], tmp_path)
    dm = _datamodule(cfg, tmp_path)
    assert dm.classes == ["good", "defect"]
    assert dm.index.original_labels["real"] == {"good": 6, "scratch": 3, "dent": 3}
    cfg = compose_config(
        "train", ["data=folder", f"data.root={root}", "data.task=multiclass"], tmp_path
    )
    assert _datamodule(cfg, tmp_path).classes == ["good", "dent", "scratch"]


def test_a_class_only_a_synthetic_source_has_is_a_clear_error(real_set, tmp_path):
    overrides = [
        "data=manifest",
        f"data.manifest={real_set / 'manifest.csv'}",
        "data.task=multiclass",
        "data.sources.painted.label=null",  # painted kinds keep their own names
        "data.synthetic_fraction=0.3",
    ]
    cfg = compose_config("train", overrides, tmp_path)
    with pytest.raises(
        ValueError, match=r"only in synthetic source.*data\.sources\.painted\.label"
    ):
        _datamodule(cfg, tmp_path)
    cfg = compose_config("train", [*overrides, "data.allow_synthetic_only_classes=true"], tmp_path)
    assert set(_datamodule(cfg, tmp_path).classes) > {"good", "defect"}
    # a synthetic source that is not drawn (weight 0 in the mix) adds no class at all
    cfg = compose_config("train", [*overrides[:-1], "data.synthetic_fraction=0"], tmp_path)
    assert _datamodule(cfg, tmp_path).classes == ["good", "defect"]


def test_balance_loss_gives_inverse_frequency_weights(real_set, tmp_path):
    cfg = compose_config(
        "train",
        ["data=manifest", f"data.manifest={real_set / 'manifest.csv'}", "data.balance=loss"],
        tmp_path,
    )
    dm = _datamodule(cfg, tmp_path)
    counts = dm.real_train_counts
    weights = dm.loss_balance()["class_weights"]
    assert weights[0] * counts["good"] == pytest.approx(weights[1] * counts["defect"])
    # mean weight 1 over the training images: the loss keeps its scale
    assert weights[0] * counts["good"] + weights[1] * counts["defect"] == pytest.approx(
        counts["good"] + counts["defect"]
    )


def test_unknown_modes_name_the_key(real_set, tmp_path):
    for key, value in (
        ("data.resize", "stretch"),
        ("data.task", "ternary"),
        ("data.balance", "yes"),
    ):
        cfg = compose_config(
            "train",
            ["data=manifest", f"data.manifest={real_set / 'manifest.csv'}", f"{key}={value}"],
            tmp_path,
        )
        with pytest.raises(Exception, match=rf"{key}='{value}': use one of"):
            _datamodule(cfg, tmp_path)


def test_records_relabelled_for_binary_keep_their_item_and_path():
    from anomaly_vit.data.labels import Task, apply_task

    records = {"real": [Record("real", "a", "scratch", "single", "/x.png")]}
    mapped = apply_task(records, Task.BINARY, "good", "defect")["real"][0]
    assert (mapped.label, mapped.item_id, mapped.path) == ("defect", "a", "/x.png")


# ---------------------------------------------------------------------------------- learning


def _fit(manifest: Path, tmp_path: Path, *overrides: str) -> dict:
    from anomaly_vit.train import train

    cfg = compose_config(
        "train", ["data=manifest", f"data.manifest={manifest}", *TINY_REAL, *overrides], tmp_path
    )
    train(cfg)
    return json.loads((tmp_path / "summary.json").read_text())["test"]


@pytest.mark.slow
def test_the_real_recipe_learns_an_imbalanced_set_the_unbalanced_default_calls_all_good(
    tmp_path_factory,
):
    root = make_real_set(tmp_path_factory.mktemp("imbalanced"), n_items=48, per_item=3, seed=1)
    manifest = root / "manifest.csv"  # 1 defect image in 9: 16 defects, 128 good
    real_dir = tmp_path_factory.mktemp("real_recipe")
    real = _fit(manifest, real_dir)
    plain = _fit(
        manifest,
        tmp_path_factory.mktemp("unbalanced"),
        "data.balance=none",
        "model.mask_loss.weight=0",
        "model.mask_loss.decision=head",
    )
    assert real["test/balanced_acc"] >= 0.85, real
    assert real["test/auroc"] >= 0.9, real
    assert plain["test/balanced_acc"] <= 0.6, plain  # says "good" to (nearly) everything
    _fine_tune_carries_the_token_head(real_dir / "checkpoints" / "best.ckpt")


def _fine_tune_carries_the_token_head(checkpoint: Path) -> None:
    import torch

    from anomaly_vit.checkpointing.finetune import apply_finetune
    from anomaly_vit.model.module import ViTClassifier

    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    child = ViTClassifier(hparams["classes"], hparams["net"], mask_loss=hparams["mask_loss"])
    assert not torch.equal(child.token_head.proj.weight, stored["token_head.proj.weight"])
    apply_finetune(child, str(checkpoint))
    assert torch.equal(child.token_head.proj.weight, stored["token_head.proj.weight"])


def test_auto_img_size_follows_the_photos_aspect_ratio(real_set, tmp_path):
    from anomaly_vit.data.resize import auto_size_hw

    assert auto_size_hw([2.5, 2.52, 2.6], 40960, 16) == (320, 128)  # tall parts
    assert auto_size_hw([1.0], 40960, 16) == (208, 208)  # square ones
    cfg = compose_config(
        "train", ["data=manifest", f"data.manifest={real_set / 'manifest.csv'}"], tmp_path
    )
    assert cfg.model.net.img_size == "auto"
    dm = _datamodule(cfg, tmp_path)
    assert dm.input_hw == (320, 128)  # the generated photos are 40 x 16 (aspect 2.5)


@pytest.mark.parametrize("layout", ["manifest", "folder", "paired"])
def test_the_real_configs_pass_the_training_guard_with_auto_img_size(layout, real_set, tmp_path):
    from anomaly_vit.guards import check_training_config

    key = {"manifest": "data.manifest=x.csv", "folder": "data.root=x", "paired": "data.root=x"}
    cfg = compose_config("train", [f"data={layout}", key[layout]], tmp_path)
    assert cfg.model.net.img_size == "auto"
    check_training_config(cfg)  # what `python -m anomaly_vit.train data=...` runs first
    cfg.model.net.img_size = "big"
    with pytest.raises(ValueError, match=r"model.net.img_size=big: .*or auto"):
        check_training_config(cfg)

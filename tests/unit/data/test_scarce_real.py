"""`data.real_fraction` (share of real training items, val/test untouched) and `data.mix_mode`
(add: synthetic images on top of the real epoch), on the datamodule built from the config."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from anomaly_vit.build import build_datamodule
from anomaly_vit.data.scarce import MixMode, epoch_length, keep_real_share
from anomaly_vit.data.split import read_split_csv
from tests.helpers import compose_config

REAL_SOURCES = ("real",)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("scarce_root")


def _datamodule(data_root, tmp_path, *overrides: str, setup: bool = True):
    cfg = compose_config(
        "train", ["debug=smoke", f"paths.root_dir={data_root}", *overrides], tmp_path / "run"
    )
    datamodule = build_datamodule(cfg.data, tmp_path / "run")
    if setup:
        datamodule.setup("fit")
    return datamodule


def _items(datamodule, split: str, sources=REAL_SOURCES) -> set[str]:
    return {
        r.item_id
        for name in sources
        for r in datamodule.records[name]
        if datamodule.split_of_item.get(r.item_id) == split
    }


def test_keep_real_share_is_stratified_nested_and_seeded() -> None:
    labels = {f"g{i}": "good" for i in range(40)} | {f"d{i}": "scratch" for i in range(8)}
    split = {item: ("val" if item.endswith("7") else "train") for item in labels}
    train = Counter(labels[i] for i, s in split.items() if s == "train")
    kept = {f: keep_real_share(split, labels, f, seed=3) for f in (0.1, 0.25, 0.5, 1.0)}
    for fraction, result in kept.items():
        assert {i: s for i, s in result.items() if s != "unused"} == {
            i: s for i, s in split.items() if s != "train" or result[i] == "train"
        }
        counts = Counter(labels[i] for i, s in result.items() if s == "train")
        assert counts == {c: max(1, round(n * fraction)) for c, n in train.items()}
        assert all(result[i] == s for i, s in split.items() if s == "val"), "val untouched"
    trains = [{i for i, s in kept[f].items() if s == "train"} for f in (0.1, 0.25, 0.5, 1.0)]
    assert trains[0] <= trains[1] <= trains[2] <= trains[3], "smaller shares are nested"
    other_seed = {
        i for i, s in keep_real_share(split, labels, 0.25, seed=4).items() if s == "train"
    }
    assert other_seed != trains[1]


def test_real_fraction_keeps_val_and_test_and_a_quarter_of_training_items(data_root, tmp_path):
    full = _datamodule(data_root, tmp_path / "full", setup=False)
    quarter = _datamodule(data_root, tmp_path / "quarter", "data.real_fraction=0.25")
    full_splits = full.index.records_of_splits(full.mix_weights, None)
    for split in ("val", "test"):
        assert _items(quarter, split) == _items(full, split)
        assert quarter.records_of_split[split] == full_splits[split]
    kept, all_train = _items(quarter, "train"), _items(full, "train")
    assert kept < all_train and _items(quarter, "unused") == all_train - kept
    label = {r.item_id: r.label for r in full.records["real"]}
    for cls, n in Counter(label[i] for i in all_train).items():
        assert sum(label[i] == cls for i in kept) == max(1, round(n * 0.25))
    # the training images, real and synthetic, come from the kept items only
    assert {r.item_id for r in quarter.records_of_split["train"]} <= kept
    painted = [r for r in quarter.records_of_split["train"] if r.source == "painted"]
    assert painted and {r.item_id for r in painted} <= kept
    # split.csv says which items were left out, and a resumed run keeps them out
    rows = read_split_csv(tmp_path / "quarter" / "run" / "split.csv", REAL_SOURCES)
    assert {i for i, s in rows.items() if s == "unused"} == all_train - kept


def test_add_mode_puts_synthetic_images_on_top_of_the_real_epoch(data_root, tmp_path):
    real_count = len(_items(_datamodule(data_root, tmp_path / "r", setup=False), "train")) * 2
    datamodule = _datamodule(
        data_root, tmp_path / "add", "data.mix_mode=add", "data.synthetic_fraction=0.25"
    )
    assert datamodule.samples_per_epoch == real_count + round(real_count / 3)
    names = list(datamodule.sources)
    drawn = Counter()
    for batch in datamodule.train_dataloader():
        drawn.update("real" if names[int(i)] == "real" else "synthetic" for i in batch["source"])
    assert abs(drawn["real"] - real_count) <= 1  # the full real epoch (rounding of quotas)
    assert drawn["real"] + drawn["synthetic"] == datamodule.samples_per_epoch
    replace = _datamodule(data_root, tmp_path / "replace", "data.synthetic_fraction=0.25")
    assert replace.samples_per_epoch == real_count


def test_epoch_length_and_bad_values() -> None:
    assert epoch_length(90, 0.5, MixMode.ADD) == 180
    assert epoch_length(90, 0.0, MixMode.ADD) == epoch_length(90, 0.5, MixMode.REPLACE) == 90


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.real_fraction=0"], r"data\.real_fraction must be in \(0, 1\]"),
        (["data.real_fraction=1.5"], r"data\.real_fraction must be in \(0, 1\]"),
        (["data.mix_mode=add", "data.synthetic_fraction=1"], r"data\.synthetic_fraction must"),
        (["data.mix_mode=more"], r"data\.mix_mode='more': use one of \['replace', 'add'\]"),
    ],
)
def test_bad_keys_name_themselves(data_root, tmp_path, overrides, message) -> None:
    with pytest.raises(Exception, match=message):
        _datamodule(data_root, tmp_path, *overrides, setup=False)


def test_synthetic_pretrain_preset_shows_no_real_defect(data_root, tmp_path):
    datamodule = _datamodule(
        data_root, tmp_path, "experiment=synthetic_pretrain", "data.sources.composite.weight=0",
        "data.real_fraction=0.5", setup=False,
    )  # fmt: skip
    train = datamodule.index.records_of_splits(datamodule.mix_weights, None)["train"]
    by_source = Counter(r.source for r in train)
    assert by_source["real"] == 0 and by_source["composite"] == 0
    assert {r.label for r in train if r.source == "good"} == {"good"}
    assert {r.label for r in train if r.source != "good"} == {"defect"}
    assert all(datamodule.sources[r.source].synthetic for r in train if r.source != "good")
    assert {r.item_id for r in train} <= _items(datamodule, "train")  # kept items only
    assert datamodule.classes == ["good", "defect"]
    assert {
        r.source for r in datamodule.index.records_of_splits(datamodule.mix_weights, None)["val"]
    } == {"real"}


@pytest.mark.slow
def test_synthetic_pretrain_then_real_finetune_carries_epochs_and_lineage(data_root, tmp_path):
    from anomaly_vit.train import train

    common = ["debug=smoke", f"paths.root_dir={data_root}", "trainer.max_epochs=1",
              "callbacks.maps=null", "test=false", "data.real_fraction=0.5"]  # fmt: skip
    pretrain = tmp_path / "pretrain"
    train(compose_config("train", [*common, "experiment=synthetic_pretrain",
                                   "data.sources.composite.weight=0"], pretrain))  # fmt: skip
    parent = json.loads((pretrain / "summary.json").read_text())
    assert parent["config"]["data"]["sources"]["real"]["weight"] == 0.0
    best = pretrain / "checkpoints" / "best.ckpt"
    finetune = tmp_path / "finetune"
    train(compose_config("train", [*common, "data.task=binary", f"finetune_from={best}"], finetune))
    summary = json.loads((finetune / "summary.json").read_text())
    assert summary["global_epoch"] == 2
    (lineage,) = summary["lineage"]
    assert lineage["ckpt_path"] == str(best.resolve()) and lineage["global_epoch"] == 1
    with (finetune / "split.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["source"] == "real"]
    with (pretrain / "split.csv").open() as handle:
        assert rows == [r for r in csv.DictReader(handle) if r["source"] == "real"]  # same items

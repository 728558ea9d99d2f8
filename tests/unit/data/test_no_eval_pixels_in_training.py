"""No validation or test pixels reach a training batch: every image a training epoch draws is
a train item's, or derived (composite, painted) only from train items' images."""

from __future__ import annotations

import hashlib

import torch

from anomaly_vit.build import build_datamodule
from anomaly_vit.data.records import Record
from tests.helpers import compose_config


def _ancestors(record: Record) -> list[Record]:
    """The real records an image is made of (itself when it is not derived)."""
    if not record.parents:
        return [record]
    return [leaf for parent in record.parents for leaf in _ancestors(parent)]


def _digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest()


def test_a_training_epoch_draws_no_validation_or_test_pixels(smoke_data_root, tmp_path) -> None:
    overrides = ["debug=smoke", f"paths.root_dir={smoke_data_root}", "data.batch_augment=null"]
    cfg = compose_config("train", overrides, tmp_path / "run")
    datamodule = build_datamodule(cfg.data, tmp_path / "run")
    datamodule.setup("fit")
    split_of_item = datamodule.split_of_item
    held_out = {
        (r.path, r.view) for split in ("val", "test") for r in datamodule.records_of_split[split]
    }
    held_out_pixels = {
        _digest(datamodule.datasets[split][i]["image"])
        for split in ("val", "test")
        for i in range(len(datamodule.datasets[split]))
    }
    train_records = datamodule.records_of_split["train"]
    drawn_sources, n_drawn = set(), 0
    for batch in datamodule.train_dataloader():
        for index, image in zip(batch["index"].tolist(), batch["image"], strict=True):
            record = train_records[index]
            drawn_sources.add(record.source)
            n_drawn += 1
            for leaf in _ancestors(record):
                assert split_of_item[leaf.item_id] == "train", (record.path, leaf.item_id)
                assert (leaf.path, leaf.view) not in held_out, record.path
            assert _digest(image) not in held_out_pixels, record.path
    assert n_drawn == datamodule.samples_per_epoch
    assert {"real", "composite", "painted"} <= drawn_sources  # derived images were checked too

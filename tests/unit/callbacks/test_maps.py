"""MapDumper: which epochs dump, what the files hold, metrics rows, TensorBoard, evolution."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader

from anomaly_vit.callbacks.maps import MapDumper, is_due
from anomaly_vit.callbacks.metrics_writer import EpochMetricsWriter
from anomaly_vit.data.cache import CachedImages, probe_pool
from anomaly_vit.maps.probes import select_probes
from anomaly_vit.maps.scores import score_maps
from anomaly_vit.model.module import ViTClassifier
from anomaly_vit.rundir import read_metrics_csv
from anomaly_vit.viz.evolution import spread

CLASSES = ["good", "scratch"]
IMG, PATCH = 32, 8
NET = {
    "model_name": "vit_tiny_patch16_224",
    "img_size": IMG,
    "patch_size": PATCH,
    "embed_dim": 16,
    "depth": 1,
    "num_heads": 2,
}
KINDS = ["rollout", "relevance", "contrast"]


class TinyData(L.LightningDataModule):
    """8 random images, alternating good / scratch; scratches have a 8x12 mask."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (8, 3, IMG, IMG), generator=generator, dtype=torch.uint8)
        labels = torch.tensor([0, 1] * 4)
        masks = torch.zeros(8, IMG, IMG, dtype=torch.bool)
        masks[1::2, 8:16, 8:20] = True
        sources = torch.zeros(8, dtype=torch.long)
        self.classes = CLASSES
        self.datasets = {
            "train": CachedImages(images, labels, sources),
            "val": CachedImages(images, labels, sources, masks),
        }

    def probe_pool(self, split: str, synthetic: bool):
        return probe_pool(self.datasets[split], None, {}, synthetic, split)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.datasets["train"], batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.datasets["val"], batch_size=8)


def _fit(root, max_epochs: int, dumper: MapDumper) -> L.Trainer:
    L.seed_everything(0)
    model = ViTClassifier(classes=CLASSES, net=NET, scheduler=None)
    trainer = L.Trainer(
        default_root_dir=root,
        max_epochs=max_epochs,
        accelerator="cpu",
        callbacks=[EpochMetricsWriter(), dumper],
        logger=TensorBoardLogger(root, name="tensorboard", version=""),
        num_sanity_val_steps=2,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(model, datamodule=TinyData())
    return trainer


def _events(root) -> EventAccumulator:
    events = EventAccumulator(str(root / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def five_epochs(tmp_path_factory):
    """max_epochs=5, every_n_epochs=2: dumps at global epochs 2, 4 and 5 (the last)."""
    root = tmp_path_factory.mktemp("rollouts")
    dumper = MapDumper(
        every_n_epochs=2, probes_per_class=2, kinds=KINDS, tolerance_px=4, score_split="val"
    )
    _fit(root, 5, dumper)
    return root


def test_dumps_score_the_whole_validation_split(five_epochs):
    rows = {int(row["epoch"]): row for row in read_metrics_csv(five_epochs / "metrics.csv")}
    for epoch, row in rows.items():
        dumped = epoch in (2, 4, 5)
        assert math.isfinite(row["maps_val/n_scored"]) == dumped, epoch
        if dumped:  # the 4 scratches of the validation split, every map and both baselines
            assert row["maps_val/n_scored"] == 4
            for kind in (*KINDS, "baseline_random", "baseline_centre"):
                for score in ("pointing", "energy", "pixel_auroc"):
                    assert 0.0 <= row[f"maps_val/{kind}/{score}"] <= 1.0, (kind, score)
            assert 0 < row["maps/score_seconds"] <= row["maps/dump_seconds"]
    timing = json.loads((five_epochs / "rollouts" / "timing.json").read_text())
    assert timing["score_split"] == "val" and sorted(timing["score_seconds"]) == ["2", "4", "5"]


def test_dumps_at_n_2n_and_last_epoch_only(five_epochs):
    names = {path.name for path in (five_epochs / "rollouts").iterdir()}
    expected = {f"epoch_{e:04d}.{ext}" for e in (2, 4, 5) for ext in ("png", "npz")}
    assert names == expected | {"evolution.png", "timing.json"}
    timing = json.loads((five_epochs / "rollouts" / "timing.json").read_text())
    assert timing["dumps"] == 3 and set(timing["dump_seconds"]) == {"2", "4", "5"}
    assert 0 < timing["dump_share"] < 1


def test_npz_holds_maps_probes_and_predictions(five_epochs):
    with np.load(five_epochs / "rollouts" / "epoch_0004.npz") as data:
        assert int(data["epoch"]) == 4
        assert list(data["kinds"]) == KINDS and list(data["classes"]) == CLASSES
        assert data["images"].shape == (4, 3, IMG, IMG) and data["images"].dtype == np.uint8
        assert data["labels"].tolist() == [0, 0, 1, 1]  # two probes per class
        assert data["masks"].shape == (4, IMG, IMG)
        assert data["masks"].sum(axis=(1, 2)).tolist() == [0, 0, 96, 96]
        assert not data["synthetic"].any()
        for kind in KINDS:
            assert data[f"maps_{kind}"].shape == (4, IMG, IMG)
            assert data[f"grids_{kind}"].shape == (4, IMG // PATCH, IMG // PATCH)
        assert data["probs"].shape == (4, 2)
        np.testing.assert_allclose(data["probs"].sum(axis=1), 1.0, atol=1e-5)
        assert data["preds"].tolist() == data["probs"].argmax(axis=1).tolist()


def test_metrics_rows_carry_attention_scores_on_dump_epochs_only(five_epochs):
    rows = {int(row["epoch"]): row for row in read_metrics_csv(five_epochs / "metrics.csv")}
    assert sorted(rows) == [1, 2, 3, 4, 5]
    keys = [
        f"maps/{kind}/{score}"
        for kind in (*KINDS, "baseline_random", "baseline_centre")
        for score in ("pointing", "energy", "pixel_auroc", "patch_auroc", "entropy")
    ] + ["maps/dump_seconds", "maps/n_defect_probes"]
    for epoch, row in rows.items():
        for key in keys:
            assert math.isfinite(row[key]) == (epoch in (2, 4, 5)), (epoch, key)
    assert rows[4]["maps/n_defect_probes"] == 2
    # a uniform-random map puts about the mask's area share (96 / 1024) of its mass in the mask
    assert rows[4]["maps/baseline_random/energy"] == pytest.approx(96 / 1024, abs=0.01)
    # the logged score is the one of the maps saved in the npz (defective probes only)
    with np.load(five_epochs / "rollouts" / "epoch_0004.npz") as data:
        defect = data["masks"].any(axis=(1, 2))
        maps = torch.from_numpy(data["maps_relevance"][defect])
        masks = torch.from_numpy(data["masks"][defect])
    expected = score_maps(maps, masks, PATCH, tolerance_px=4)
    for score in ("energy", "pointing", "pixel_auroc"):
        assert rows[4][f"maps/relevance/{score}"] == pytest.approx(expected[score], abs=1e-6)


def test_tensorboard_gets_the_grid_images_and_scalars(five_epochs):
    events = _events(five_epochs)
    probes = events.Images("maps/probes")
    assert [event.step for event in probes] == [2, 4, 5]
    grid = Image.open(five_epochs / "rollouts" / "epoch_0005.png")
    assert (probes[-1].width, probes[-1].height) == grid.size == (4 * 200, 4 * 230)
    assert [event.step for event in events.Images("maps/evolution")] == [5]
    assert [event.step for event in events.Scalars("maps/rollout/energy")] == [2, 4, 5]


def test_evolution_shows_every_dump_as_a_column(five_epochs):
    evolution = Image.open(five_epochs / "rollouts" / "evolution.png")
    assert evolution.size == (3 * 200, 4 * 230)  # 3 dumps x 4 probes, 2 in panels at 100 dpi


def test_never_dumps_in_the_sanity_check(tmp_path, monkeypatch):
    dumper = MapDumper(every_n_epochs=1, probes_per_class=1, kinds=["rollout"])
    sanity_flags = []
    original = dumper.dump

    def spy(trainer, pl_module):
        sanity_flags.append(trainer.sanity_checking)
        return original(trainer, pl_module)

    monkeypatch.setattr(dumper, "dump", spy)
    _fit(tmp_path, 1, dumper)
    assert sanity_flags == [False]
    assert [event.step for event in _events(tmp_path).Images("maps/probes")] == [1]
    assert not (tmp_path / "rollouts" / "epoch_0000.png").exists()


def test_schedule_and_spread():
    assert [e for e in range(1, 6) if is_due(e, 2, is_last=e == 5)] == [2, 4, 5]
    assert [e for e in range(201, 231) if is_due(e, 10, is_last=False)] == [210, 220, 230]
    assert spread(list(range(1, 81)), 5) == [1, 21, 41, 60, 80]
    assert spread([3, 4], 5) == [3, 4]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"every_n_epochs": 0}, "callbacks.maps.every_n_epochs"),
        ({"probes_per_class": 0}, "callbacks.maps.probes_per_class"),
        ({"kinds": ["rollout", "gradcam"]}, "callbacks.maps.kinds"),
        ({"tolerance_px": -1}, "callbacks.maps.tolerance_px"),
        ({"head_fusion": "median"}, "callbacks.maps.head_fusion"),
        ({"evolution_kind": "contrast", "kinds": ["rollout"]}, "callbacks.maps.evolution_kind"),
        ({"score_split": "holdout"}, "callbacks.maps: split 'holdout'"),
        ({"score_split": "val", "score_batch_size": 0}, "callbacks.maps.batch_size"),
    ],
)
def test_bad_settings_name_their_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        MapDumper(**{"kinds": ["rollout"], **kwargs})  # kinds come from the config


def test_probes_are_real_per_class_masked_first():
    labels = torch.tensor([0, 1, 1, 1, 0, 1])
    masks = torch.zeros(6, 4, 4, dtype=torch.bool)
    masks[3, 1, 1] = True  # the only masked real scratch
    val = CachedImages(torch.zeros(6, 3, 4, 4, dtype=torch.uint8), labels, labels, masks)
    records = [SimpleNamespace(source=s, path=f"img{i}") for i, s in enumerate("rrrrrs")]
    sources = {"r": SimpleNamespace(synthetic=False), "s": SimpleNamespace(synthetic=True)}
    datamodule = SimpleNamespace(
        classes=CLASSES,
        probe_pool=lambda split, synthetic: probe_pool(val, records, sources, synthetic, split),
    )
    probes = select_probes(datamodule, per_class=2, include_synthetic=False)
    assert probes.labels.tolist() == [0, 0, 1, 1]
    assert probes.paths[2] == "img3"  # masked defect first
    assert "img5" not in probes.paths  # synthetic sources never become real probes
    again = select_probes(datamodule, per_class=2, include_synthetic=False)
    assert again.paths == probes.paths


def test_smoke_run_dumps_every_epoch(smoke_run):
    names = {path.name for path in (smoke_run / "rollouts").iterdir()}
    assert {"epoch_0001.png", "epoch_0001.npz", "epoch_0002.png", "epoch_0002.npz"} <= names
    assert "evolution.png" in names
    rows = read_metrics_csv(smoke_run / "metrics.csv")
    assert all(math.isfinite(row["maps/contrast/pixel_auroc"]) for row in rows)
    with np.load(smoke_run / "rollouts" / "epoch_0002.npz") as data:
        assert data["labels"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # 2 per class, 4 classes
        assert data["masks"][2:].any(axis=(1, 2)).all()  # defective probes come with masks


def test_synthetic_probes_come_from_synthetic_sources(smoke_run, tmp_path):
    from anomaly_vit.build import build_datamodule
    from tests.helpers import compose_config

    root = smoke_run.parents[2]
    cfg = compose_config("train", ["debug=smoke", f"paths.root_dir={root}"], tmp_path)
    datamodule = build_datamodule(cfg.data, None)
    datamodule.setup("fit")
    probes = select_probes(datamodule, per_class=1, include_synthetic=True)
    real, synthetic = ~probes.synthetic, probes.synthetic
    assert probes.labels[real].tolist() == [0, 1, 2, 3]
    assert probes.labels[synthetic].tolist() == [0, 1, 2, 3]
    assert all(path.startswith(str(root)) for path in np.asarray(probes.paths)[real.numpy()])
    assert probes.images.shape[1:] == (3, 64, 64)
    assert probes.masks[synthetic][1:].any(dim=(1, 2)).all()  # painted/composite defects have masks

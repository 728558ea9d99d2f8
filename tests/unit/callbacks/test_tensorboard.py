"""What TensorBoard shows for a run: scalars on the global-epoch axis, the validation confusion
matrix and rollout grids as images, the resolved config as text, hparams with the test metrics."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from anomaly_vit.callbacks.metrics_writer import EpochMetricsWriter
from anomaly_vit.viz.confusion import confusion_rgb
from tests.helpers import explain_tags

EPOCH_SCALARS = (
    "train/loss",
    "train/acc",
    "lr",
    "val/loss",
    "val/acc",
    "val/balanced_acc",
    "val/auroc",
)


def _events(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def smoke_events(smoke_run) -> EventAccumulator:
    return _events(smoke_run / "tensorboard")


@pytest.fixture(scope="module")
def smoke_summary(smoke_run) -> dict:
    return json.loads((smoke_run / "summary.json").read_text())


def test_scalars_are_on_the_global_epoch_axis_and_equal_metrics_csv(
    smoke_run, smoke_events, smoke_summary
):
    with (smoke_run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    epochs = list(range(1, smoke_summary["global_epoch"] + 1))
    tags = smoke_events.Tags()["scalars"]
    for tag in (*EPOCH_SCALARS, *(t for t in tags if t.startswith("maps/"))):
        points = smoke_events.Scalars(tag)
        assert [p.step for p in points] == epochs, tag
        assert [p.value for p in points] == pytest.approx(
            [float(r[tag]) for r in rows], rel=1e-6
        ), tag
    assert "hp_metric" not in tags


def test_validation_confusion_image_at_every_epoch(smoke_events, smoke_summary):
    images = smoke_events.Images("val/confusion")
    assert [image.step for image in images] == list(range(1, smoke_summary["global_epoch"] + 1))
    classes = smoke_summary["classes"]
    expected = confusion_rgb(np.eye(len(classes), dtype=int), classes, "validation, global epoch 1")
    for image in images:
        decoded = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
        assert decoded.shape[:2] == expected.shape[:2] == (image.height, image.width)
        assert decoded[..., :3].std() > 0  # a drawing, not a blank
    # and the rollout grids of the same epochs, from the rollout callback
    assert [image.step for image in smoke_events.Images("maps/probes")] == [1, 2]


def test_resolved_config_is_text(smoke_events, smoke_summary):
    (event,) = smoke_events.Tensors("config/text_summary")
    text = event.tensor_proto.string_val[0].decode()
    assert event.step == 0
    assert "overrides: `debug=smoke`" in text
    for line in (
        "max_epochs: 2",
        "embed_dim: 32",
        "n_items: 48",
        f"seed: {smoke_summary['config']['seed']}",
    ):
        assert any(row.strip() == line for row in text.splitlines()), line
    assert all(not row or row.startswith("    ") for row in text.split("\n\n", 1)[1].splitlines())
    assert "${" not in text  # resolved


def test_hparams_hold_the_real_test_metrics(smoke_events, smoke_summary):
    content = smoke_events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]
    ).experiment
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    test = {k: v for k, v in smoke_summary["test"].items() if isinstance(v, float)}
    explain = explain_tags(
        smoke_summary["explain"]
    )  # the maps' scores (tests/unit/maps/test_scorer.py)
    assert {m.name.tag for m in experiment.metric_infos} == set(test) | set(explain)
    for tag, value in test.items():
        (point,) = smoke_events.Scalars(tag)
        assert point.value == pytest.approx(value, rel=1e-6), tag
    hparams = start.session_start_info.hparams
    for name, value in smoke_summary["config"]["hparams"].items():
        shown = hparams[name].string_value if isinstance(value, str) else hparams[name].number_value
        assert shown == pytest.approx(value), name
    assert "hp_metric" not in {m.name.tag for m in experiment.metric_infos}


class _Module:
    """What EpochMetricsWriter reads from a ViTClassifier."""

    classes = ["good", "scratch", "stain"]

    def __init__(self) -> None:
        self.epoch_metrics: dict = {}
        self.current_epoch = 0

    @property
    def global_epoch(self) -> int:
        return self.current_epoch + 1

    def train_epoch_metrics(self) -> dict[str, float]:
        return {"train/loss": 1.0 / self.global_epoch}


@pytest.mark.parametrize(
    ("every", "expected"),
    [(1, [1, 2, 3, 5]), (2, [2, 5]), (0, [])],  # epoch 4 did not validate; 5 is the last
)
def test_confusion_image_cadence(tmp_path, every, expected):
    logger = TensorBoardLogger(tmp_path, name="tensorboard", version="")
    trainer = SimpleNamespace(loggers=[logger], default_root_dir=str(tmp_path), sanity_checking=False,
                              is_global_zero=True, should_stop=False, max_epochs=5)  # fmt: skip
    writer, module = EpochMetricsWriter(confusion_every_n_epochs=every), _Module()
    for epoch in range(1, 6):
        module.current_epoch = epoch - 1
        if epoch != 4:  # validation ran: the module holds a new dict
            module.epoch_metrics = {"val/acc": 0.5, "val/confusion": np.eye(3, dtype=int).tolist()}
        writer.on_train_epoch_end(trainer, module)
    logger.experiment.flush()
    events = _events(tmp_path / "tensorboard")
    drawn = "val/confusion" in events.Tags()["images"]
    steps = [image.step for image in events.Images("val/confusion")] if drawn else []
    assert steps == expected
    assert sorted(writer.confusion_seconds) == expected
    with (tmp_path / "metrics.csv").open() as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4, 5]


def test_confusion_cadence_must_not_be_negative():
    with pytest.raises(ValueError, match="confusion_every_n_epochs"):
        EpochMetricsWriter(confusion_every_n_epochs=-1)


def test_confusion_rgb_colours_cells_by_row_share_and_writes_counts():
    import matplotlib

    classes = ["good", "scratch", "stain"]
    matrix = np.array([[10, 0, 0], [0, 7, 0], [3, 0, 9]])  # row 3: shares 0.25 / 0 / 0.75
    rgb = confusion_rgb(matrix, classes, "validation, global epoch 4", cell=40)
    blues = (matplotlib.colormaps["Blues"]([0.0, 0.25, 0.75, 1.0])[:, :3] * 255).astype(np.uint8)

    def pixels(colour):
        return int((rgb == colour).all(axis=-1).sum())

    cell = 40 * 40
    text_room = 0.25 * cell  # the count drawn in a cell covers less than a quarter of it
    assert pixels(blues[3]) >= 2 * cell - 2 * text_room  # two full rows on the diagonal
    assert pixels(blues[0]) >= 5 * cell - 5 * text_room  # five empty cells
    for colour in (blues[1], blues[2]):
        assert cell - text_room <= pixels(colour) <= cell
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    bigger = confusion_rgb(np.eye(5, dtype=int), [*classes, "crack", "dent"], cell=40)
    assert bigger.shape[0] > rgb.shape[0] and bigger.shape[1] > rgb.shape[1]

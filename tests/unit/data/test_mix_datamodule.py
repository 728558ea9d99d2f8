"""`data.synthetic_fraction` and the source weights decide how many images of each source every
epoch holds: counted on the batches of the datamodule's own training loader (config -> mix
weights -> sampler -> loader), not on the sampler alone (tests/unit/data/test_sampler.py)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from anomaly_vit.build import build_datamodule
from tests.helpers import compose_config

SAMPLES = 40
# composite : painted = 3 : 2 inside the synthetic share
WEIGHTS = ["data.sources.composite.weight=3", "data.sources.painted.weight=2"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mix_root")


def _epoch_counts(datamodule, epoch: int) -> tuple[Counter, list[int]]:
    """Images per source name in one epoch of the training loader, and the drawn order."""
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
    names = list(datamodule.sources)
    counts, order = Counter(), []
    for batch in loader:
        counts.update(names[int(i)] for i in batch["source"])
        order += batch["index"].tolist()
    return counts, order


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, {"real": 40, "composite": 0, "painted": 0}),
        (0.25, {"real": 30, "composite": 6, "painted": 4}),
        (0.5, {"real": 20, "composite": 12, "painted": 8}),
        (1.0, {"real": 0, "composite": 24, "painted": 16}),
    ],
)
def test_synthetic_fraction_sets_the_images_of_each_source_per_epoch(
    data_root, tmp_path, fraction, expected
):
    cfg = compose_config(
        "train",
        ["debug=smoke", f"paths.root_dir={data_root}", f"data.synthetic_fraction={fraction}",
         f"data.samples_per_epoch={SAMPLES}", *WEIGHTS],
        tmp_path / "run",
    )  # fmt: skip
    datamodule = build_datamodule(cfg.data, tmp_path / "run")
    datamodule.setup("fit")
    first, first_order = _epoch_counts(datamodule, 0)
    second, second_order = _epoch_counts(datamodule, 1)
    assert {name: first[name] for name in expected} == expected
    assert second == first  # every epoch the same quotas ...
    assert first_order != second_order  # ... drawn afresh
    # a source is drawn from its own training images only
    train_sources = Counter(r.source for r in datamodule.records_of_split["train"])
    for name, count in expected.items():
        assert count == 0 or train_sources[name] > 0


def test_raw_weights_are_used_when_synthetic_fraction_is_null(data_root, tmp_path):
    cfg = compose_config(
        "train",
        ["debug=smoke", f"paths.root_dir={data_root}", "data.synthetic_fraction=null",
         f"data.samples_per_epoch={SAMPLES}", "data.sources.real.weight=5", *WEIGHTS],
        tmp_path / "run",
    )  # fmt: skip
    datamodule = build_datamodule(cfg.data, tmp_path / "run")
    datamodule.setup("fit")
    counts, _ = _epoch_counts(datamodule, 0)
    assert dict(counts) == {"real": 20, "composite": 12, "painted": 8}  # 5 : 3 : 2 of 40
    labels = torch.cat([batch["label"] for batch in datamodule.train_dataloader()])
    assert len(labels) == SAMPLES

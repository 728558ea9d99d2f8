"""Training learns: a short run (4 epochs, ~10 s each case on 2 cores) of the whole pipeline (`train(cfg)`: datamodule, batched
augmentation, ViTClassifier, optimizer and schedule) on an easy generated set scores far above
chance on its held-out test split, and the same run does NOT when the labels carry no signal
(shuffled) or when nothing is learned (lr ~0). Without the two controls, a test that passes on a
high score could pass for a reason other than learning (a leak, a constant prediction)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.train import train
from tests.helpers import compose_config

SIDE = 32
ITEMS_PER_CLASS = 30
SPOT = 8


def easy_tree(root: Path, shuffle_labels: bool, seed: int = 0) -> Path:
    """`<root>/{left,right}/{good,spot}/<item>.png`: noisy grey images; a `spot` item has one
    bright 8x8 square (both views, same place). With `shuffle_labels` the folders are a coin
    flip, unrelated to the square."""
    rng = np.random.default_rng(seed)
    labels = np.array([0] * ITEMS_PER_CLASS + [1] * ITEMS_PER_CLASS)
    folders = rng.permutation(labels) if shuffle_labels else labels
    for i, (has_spot, folder) in enumerate(zip(labels, folders, strict=True)):
        image = rng.normal(100, 20, (SIDE, SIDE, 3)).clip(0, 255).astype(np.uint8)
        if has_spot:
            top, left = rng.integers(0, SIDE - SPOT, 2)
            image[top : top + SPOT, left : left + SPOT] = 240
        for view in ("left", "right"):
            path = root / view / ("good", "spot")[folder] / f"item{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
    return root


def _test_balanced_accuracy(tmp_path: Path, shuffle_labels: bool, lr: float) -> float:
    data = easy_tree(tmp_path / "data", shuffle_labels)
    overrides = [
        "debug=smoke", f"paths.root_dir={tmp_path}", "data.demo=null",
        f"data.sources.real.root={data}", f"model.net.img_size={SIDE}",
        "data.synthetic_fraction=0", "data.sources.painted.kinds=[scratch]",
        "+data.sources.painted.label_of_kind={scratch: spot}",
        "trainer.max_epochs=4", "model.scheduler.warmup_epochs=1", f"model.optimizer.lr={lr}",
        "callbacks.maps=null", "callbacks.curves=null", "callbacks.checkpoint_periodic=null",
        "seed=3",
    ]  # fmt: skip
    run_dir = tmp_path / "run"
    train(compose_config("train", overrides, run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["classes"] == ["good", "spot"]
    assert sum(map(sum, summary["test"]["test/confusion"])) == 24  # 12 held-out items x 2 views
    return float(summary["test"]["test/balanced_acc"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "shuffle_labels", "lr", "learns"),
    [
        ("learns", False, 3e-3, True),
        ("shuffled labels", True, 3e-3, False),
        # lr 0 itself is refused with a one-line message (guards.py): 1e-9 learns nothing either
        ("lr ~0", False, 1e-9, False),
    ],
)
def test_training_beats_chance_only_when_there_is_something_to_learn(
    tmp_path, case, shuffle_labels, lr, learns
):
    score = _test_balanced_accuracy(tmp_path, shuffle_labels, lr)
    if learns:
        assert score >= 0.9, f"{case}: test balanced accuracy {score:.3f} (chance: 0.5)"
    else:
        assert score <= 0.7, f"{case}: test balanced accuracy {score:.3f} should stay near 0.5"

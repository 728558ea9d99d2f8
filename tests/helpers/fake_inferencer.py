"""A stand-in for `anomaly_vit.deploy.Inferencer` (docs: /work/notes/deploy_api.md) until the
deploy branch lands: the score is a photo's mean brightness, the map its brightness."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Prediction:
    path: str | None
    score: float
    is_defect: bool
    label: str
    threshold: float
    policy: str
    map: np.ndarray
    mask: np.ndarray
    boxes: list
    mask_area: int
    error: str | None


BUNDLE = {
    "format_version": 1,
    "classes": ["good", "defect"],
    "good_class": "good",
    "defect_class": "defect",
    "thresholds": {
        "youden": {"threshold": 0.5, "val": {"tp": 4, "fp": 1, "tn": 3, "fn": 0}, "test": None},
        "recall:1.0": {"threshold": 0.3, "val": {"tp": 4, "fp": 2, "tn": 2, "fn": 0}},
        "fpr:0.01": {"threshold": 0.8, "val": {"tp": 2, "fp": 0, "tn": 4, "fn": 2}},
    },
    "default_policy": "youden",
    "pixel_threshold": 0.5,
    "map_kind": "tokens",
}


class FakeInferencer:
    def __init__(self, bundle_dir, threshold_policy=None, threshold=None):
        self.bundle = json.loads((Path(bundle_dir) / "bundle.json").read_text())
        if threshold is not None:
            self.threshold, self.policy = float(threshold), "manual"
        else:
            self.policy = threshold_policy or self.bundle["default_policy"]
            self.threshold = self.bundle["thresholds"][self.policy]["threshold"]

    def policies(self):
        return self.bundle["thresholds"]

    def predict(self, x):
        items = x if isinstance(x, list) else [x]
        return [self._one(item) for item in items]

    def _one(self, item):
        image = item if isinstance(item, Image.Image) else Image.open(item)
        gray = np.asarray(image.convert("L"), dtype=np.float32) / 255
        score = float(gray.mean())
        called = score >= self.threshold
        mask = (gray >= self.bundle["pixel_threshold"]) & called
        return Prediction(
            None, score, called, "defect" if called else "good", self.threshold, self.policy,
            gray, mask, [(0, 0, 1, 1)] if mask.any() else [], int(mask.sum()), None,
        )  # fmt: skip


def fake_bundle(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bundle.json").write_text(json.dumps(BUNDLE))
    return folder


def fake_save_threshold(bundle_dir, value, name="manual"):
    bundle = json.loads((Path(bundle_dir) / "bundle.json").read_text())
    bundle["thresholds"][name] = {"threshold": value}
    bundle["default_policy"] = name
    new = Path(f"{bundle_dir}_v2")
    return fake_bundle(new) if not (new / "bundle.json").write_text(json.dumps(bundle)) else new

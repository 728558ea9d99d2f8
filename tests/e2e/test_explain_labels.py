"""explain labels images the way the model was trained: a binary model's class folders and
manifest labels map through its task (every class but good is its defect class), so accuracy
counts every image, not only the good ones."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from anomaly_vit.explain.command import explain
from tests.helpers import compose_config
from tests.helpers.checkpoints import classifier_checkpoint


def _images(root, labels, n=2):
    rng = np.random.default_rng(0)
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{label}_{i}.png")
    return root


def _explain(tmp_path, ckpt, input_path):
    out = tmp_path / "explain"
    overrides = [f"ckpt_path={ckpt}", f"input={input_path}", "overlays=false", "device=cpu",
                 "kinds=[evidence]"]  # fmt: skip
    summary = explain(compose_config("explain", overrides, out))
    with (out / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return summary, {r["path"].rsplit("/", 1)[-1]: r["true_label"] for r in rows}


def test_a_binary_models_defect_folders_are_its_defect_class(tmp_path) -> None:
    ckpt = classifier_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt",
                                 ["good", "defect"], task="binary")  # fmt: skip
    root = _images(tmp_path / "input", ["good", "crack", "scratch"])
    summary, labels = _explain(tmp_path, ckpt, root)
    assert labels == {"good_0.png": "good", "good_1.png": "good", "crack_0.png": "defect",
                      "crack_1.png": "defect", "scratch_0.png": "defect",
                      "scratch_1.png": "defect"}  # fmt: skip
    assert summary["n_labelled"] == 6


def test_a_binary_models_manifest_keeps_every_defect_class(tmp_path) -> None:
    ckpt = classifier_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt",
                                 ["good", "defect"], task="binary")  # fmt: skip
    root = _images(tmp_path / "data", ["good", "scratch", "crack"])
    manifest = root / "manifest.csv"
    rows = [f"{label}/{label}_{i}.png,{label},{label}{i}" for label in ("good", "scratch", "crack")
            for i in range(2)]  # fmt: skip
    manifest.write_text("path,label,item_id\n" + "\n".join(rows) + "\n")
    summary, labels = _explain(tmp_path, ckpt, manifest)
    assert summary["n_labelled"] == 6  # the scratch and crack rows are no longer dropped
    assert sorted(labels.values()) == ["defect"] * 4 + ["good"] * 2


def test_plain_subfolders_are_no_labels_and_a_multiclass_model_keeps_its_classes(tmp_path) -> None:
    binary = classifier_checkpoint(tmp_path / "b" / "checkpoints" / "best.ckpt",
                                   ["good", "defect"], task="binary")  # fmt: skip
    _, labels = _explain(tmp_path, binary, _images(tmp_path / "plain", ["batch1", "batch2"]))
    assert set(labels.values()) == {""}  # no folder is a class: no labels invented
    multi = classifier_checkpoint(tmp_path / "m" / "checkpoints" / "best.ckpt",
                                  ["good", "scratch", "crack"])  # fmt: skip
    _, labels = _explain(tmp_path, multi, _images(tmp_path / "tree", ["good", "crack"]))
    assert labels["crack_0.png"] == "crack" and labels["good_0.png"] == "good"

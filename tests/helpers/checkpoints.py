"""Checkpoints the tests build without training: a tiny classifier saved the way
`anomaly_vit.train` saves one (state dict, hyper-parameters, the "anomaly_vit" info)."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.helpers.data import TINY_NET


def classifier_checkpoint(
    path: Path, classes: list[str], task: str = "multiclass", good_class: str = "good"
) -> Path:
    """Save an untrained one-block `ViTClassifier` (32 px, 8 px patches) at `path`."""
    from anomaly_vit.model.module import ViTClassifier

    torch.manual_seed(0)
    model = ViTClassifier(classes=classes, net=dict(TINY_NET), good_class=good_class)
    data = {"task": task, "good_class": good_class, "resize": "squash"}
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": {k: v for k, v in dict(model.hparams).items()},
        "anomaly_vit": {"config": {"data": data}, "lineage": [], "global_epoch": 1,
                        "epoch_offset": 0, "classes": classes},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path

"""A trained classifier from a checkpoint of anomaly_vit.train, for the explain command."""

from __future__ import annotations

from pathlib import Path

from anomaly_vit.checkpointing.load import load_checkpoint


def load_classifier(ckpt_path: str | Path, trust_pickle: bool = False, key: str = "ckpt_path"):
    """A `ViTClassifier` from a checkpoint of anomaly_vit.train, on the CPU in eval mode.

    Loads weights only (unless `trust_pickle`) through `ViTClassifier.from_checkpoint`, like
    `anomaly_vit.eval`. Returns (model, the checkpoint's "anomaly_vit" info).
    """
    from anomaly_vit.model.module import ViTClassifier

    checkpoint = load_checkpoint(ckpt_path, key=key, trust_pickle=trust_pickle)
    model = ViTClassifier.from_checkpoint(ckpt_path, key=key, checkpoint=checkpoint)
    return model.eval(), checkpoint.get("anomaly_vit", {})

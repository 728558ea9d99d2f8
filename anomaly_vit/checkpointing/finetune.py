"""Fine-tuning: start a model from another run's weights, continue its epochs and lineage."""

from __future__ import annotations

import logging
from pathlib import Path

from anomaly_vit.checkpointing.load import load_checkpoint

log = logging.getLogger(__name__)


def apply_finetune(model, ckpt_path: str, trust_pickle: bool = False) -> None:
    """Start `model` from the weights in `ckpt_path`; continue its epoch count and lineage.

    Loads the network weights, and the mask loss's token head when both models have one
    (`weights_only`; no optimizer, schedule or epoch: those start fresh). If the class set differs, the classification head keeps its fresh initialisation
    and a warning says so. The parent (checkpoint, global epoch, run dir, config essentials) is
    appended to `model.lineage`, and `model.epoch_offset` makes this run's first epoch the
    parent's global epoch + 1.
    """
    checkpoint = load_checkpoint(ckpt_path, key="finetune_from", trust_pickle=trust_pickle)
    info = checkpoint.get("anomaly_vit", {})
    # the network and, when both runs use the mask loss, its token head
    own = model.state_dict()
    state = {
        k: v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.") or (k.startswith("token_head.") and k in own)
    }
    parent_classes = info.get("classes") or checkpoint.get("hyper_parameters", {}).get("classes")
    head_reinitialised = parent_classes != model.classes
    if head_reinitialised:
        state = {k: v for k, v in state.items() if not k.startswith("net.head.")}
        log.warning(
            "finetune_from=%s: class set changed (%s -> %s), so the classification head "
            "is re-initialised (the rest of the network is loaded).",
            ckpt_path,
            parent_classes,
            model.classes,
        )
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched or not set(state) <= set(own):
        raise ValueError(
            f"finetune_from={ckpt_path} was trained with a different architecture "
            f"(mismatched: {(mismatched or sorted(set(state) - set(own)))[:5]}); use the same "
            "model config as the parent run."
        )
    model.load_state_dict(state, strict=False)
    parent_epoch = int(info.get("global_epoch", checkpoint.get("epoch", 0) + 1))
    model.epoch_offset = parent_epoch
    model.hparams.epoch_offset = parent_epoch
    path = Path(ckpt_path).resolve()
    # the parent's folder as it is now (runs can be moved as one folder), else as recorded
    run_dir = (
        str(path.parents[1])
        if path.parent.name == "checkpoints"
        else info.get("config", {}).get("run_dir")
    )
    parent = {
        "ckpt_path": str(path),
        "global_epoch": parent_epoch,
        "run_dir": run_dir,
        "classes": parent_classes,
        "head_reinitialised": head_reinitialised,
        "config": {k: v for k, v in info.get("config", {}).items() if k != "lineage"},
    }
    model.lineage = [*info.get("lineage", []), parent]
    log.info("fine-tuning from %s: epochs continue from global epoch %d", ckpt_path, parent_epoch)

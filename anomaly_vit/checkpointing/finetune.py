"""Fine-tuning: start a model from another run's weights, continue its epochs and lineage."""

from __future__ import annotations

import logging
from pathlib import Path

from anomaly_vit.checkpointing.load import load_checkpoint
from anomaly_vit.errors import CheckpointError

log = logging.getLogger(__name__)


def apply_finetune(model, ckpt_path: str, trust_pickle: bool = False) -> None:
    """Start `model` from the weights in `ckpt_path`; continue its epoch count and lineage.

    From a training run: the network weights, and the mask loss's token head when both models
    have one; a changed class set re-initialises the classification head (with a warning).
    From a pretraining run (`anomaly_vit.pretrain`): the encoder only; the decoder is dropped and
    the head re-initialised, every key listed in the lineage. Loaded `weights_only`; optimizer,
    schedule and epoch start fresh. The parent (checkpoint, global epoch, run dir, config
    essentials) is appended to `model.lineage`, and `model.epoch_offset` makes this run's first
    epoch the parent's global epoch + 1.
    """
    checkpoint = load_checkpoint(ckpt_path, key="finetune_from", trust_pickle=trust_pickle)
    info = checkpoint.get("anomaly_vit", {})
    own = model.state_dict()
    parent_classes = info.get("classes") or checkpoint.get("hyper_parameters", {}).get("classes")
    accounts: dict = {}
    if info.get("pretrain"):
        state, accounts = _encoder_state(checkpoint, own, ckpt_path, info["pretrain"])
        head_reinitialised = True
        _warn_if_split_may_differ(info.get("config", {}), model.run_config, ckpt_path)
    else:
        state, head_reinitialised = _classifier_state(checkpoint, own, parent_classes, model)
        if head_reinitialised:
            log.warning(
                "finetune_from=%s: class set changed (%s -> %s), so the classification head "
                "is re-initialised (the rest of the network is loaded).",
                ckpt_path,
                parent_classes,
                model.classes,
            )
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched or not set(state) <= set(own):
        raise CheckpointError(
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
        **accounts,
        "config": {k: v for k, v in info.get("config", {}).items() if k != "lineage"},
    }
    model.lineage = [*info.get("lineage", []), parent]
    log.info("fine-tuning from %s: epochs continue from global epoch %d", ckpt_path, parent_epoch)


def _classifier_state(checkpoint: dict, own: dict, parent_classes, model) -> tuple[dict, bool]:
    """A trained classifier's network (its head unless the class set changed) and, when both
    runs use the mask loss, its token head."""
    state = {
        k: v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.") or (k.startswith("token_head.") and k in own)
    }
    head_reinitialised = parent_classes != model.classes
    if head_reinitialised:
        state = {k: v for k, v in state.items() if not k.startswith("net.head.")}
    return state, head_reinitialised


def _encoder_state(
    checkpoint: dict, own: dict, ckpt_path: str, pretrain: dict
) -> tuple[dict, dict]:
    """A self-supervised checkpoint's encoder (`anomaly_vit.pretrain`), every key accounted for:
    the encoder's are loaded, the decoder's and the untrained head's dropped; the fine-tune's
    own head (and token head) keep their fresh initialisation. An encoder key the model lacks,
    or one it has that the checkpoint lacks, is a different architecture: a clear error."""
    prefix = pretrain.get("encoder_prefix", "net.")
    dropped_prefixes = tuple(pretrain.get("dropped_prefixes", ("objective.", "net.head.")))
    stored = checkpoint["state_dict"]
    state = {
        k: v
        for k, v in stored.items()
        if k.startswith(prefix) and not k.startswith(dropped_prefixes)
    }
    dropped = sorted(set(stored) - set(state))
    fresh = sorted(k for k in own if k not in state)
    missing = [k for k in fresh if k.startswith(prefix) and not k.startswith(dropped_prefixes)]
    if missing:
        raise CheckpointError(
            f"finetune_from={ckpt_path} was pretrained with a different architecture (encoder "
            f"weights missing: {missing[:5]}); use the model config of the pretraining run."
        )
    log.info(
        "finetune_from=%s: self-supervised encoder (%s): %d tensors loaded; dropped %d "
        "(decoder and untrained head: %s); re-initialised: %s",
        ckpt_path,
        pretrain.get("objective"),
        len(state),
        len(dropped),
        ", ".join(sorted({k.split(".")[0] + "." + k.split(".")[1] for k in dropped})),
        ", ".join(sorted({k.rsplit(".", 1)[0] for k in fresh})),
    )
    accounts = {
        "pretrain": pretrain.get("objective"),
        "loaded_keys": sorted(state),
        "dropped_keys": dropped,
        "reinitialised_keys": fresh,
    }
    return state, accounts


def _warn_if_split_may_differ(parent: dict, child: dict, ckpt_path: str) -> None:
    """Pretraining read the training split of ITS seed and split ratios: with other ones, this
    run's validation and test items may have been pretrained on."""
    keys = ("seed", "split")
    before = {k: (parent.get("data") or {}).get(k) for k in keys}
    now = {k: (child.get("data") or {}).get(k) for k in keys}
    if child and before != now:
        log.warning(
            "finetune_from=%s: the pretraining split its data with %s, this run with %s: images "
            "of this run's validation/test split may have been pretrained on (labels were not). "
            "Use the same seed and data.split as the pretraining for a clean evaluation.",
            ckpt_path,
            before,
            now,
        )

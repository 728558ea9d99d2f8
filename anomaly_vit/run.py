"""Shared glue of the entry points: build the datamodule, config essentials, errors, summaries."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from anomaly_vit.checkpoints import load_checkpoint

log = logging.getLogger(__name__)

# Errors a user causes (bad path, bad config value, bad image): shown as one message, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, FloatingPointError)


class UserError(SystemExit):
    """Exit with a one-line message (exit code 1) instead of a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Run `task`; a user error prints `error: <message>` and exits 1, unless AVIT_TRACEBACK=1."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except USER_ERRORS as error:
            if os.environ.get("AVIT_TRACEBACK") == "1" or "pytest" in sys.modules:
                raise
            message = _root_message(error)
            log.error("%s", message)
            print(f"\nerror: {message}\n(set AVIT_TRACEBACK=1 for the full traceback)", file=sys.stderr)
            raise UserError(message) from None

    return wrapped


def _root_message(error: BaseException) -> str:
    """Hydra wraps errors raised while instantiating; show the innermost user-facing one."""
    while error.__cause__ is not None and isinstance(error.__cause__, USER_ERRORS):
        error = error.__cause__
    return str(error).strip()


def build_datamodule(data_cfg: DictConfig, output_dir: str | Path | None):
    """Instantiate `cfg.data`, generate demo data if configured, scan and split (no decoding)."""
    datamodule = hydra.utils.instantiate(data_cfg, output_dir=str(output_dir) if output_dir else None)
    datamodule.prepare_data()
    datamodule.prepare()
    return datamodule


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a config group (callbacks, loggers); skip nulls."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(node, _convert_="all") for node in cfg.values() if node and "_target_" in node]


def config_essentials(cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint, summary.json and the sweep report need to know about a run."""
    resolved = OmegaConf.to_container(cfg, resolve=False)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return {
        "run_dir": str(cfg.paths.output_dir),
        "seed": cfg.seed,
        "data": data,
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "trainer": {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items()
                    if k in ("max_epochs", "precision", "accelerator", "devices", "strategy")},
        "hparams": _flat_hparams(cfg),
        "overrides": resolved.get("overrides", []) if isinstance(resolved, dict) else [],
    }


def _flat_hparams(cfg: DictConfig) -> dict[str, float | int | str | bool]:
    """The few knobs a sweep compares, flattened for TensorBoard's hparams tab."""
    net = cfg.model.net
    return {
        "seed": int(cfg.seed),
        "synthetic_fraction": float(cfg.data.get("synthetic_fraction") or 0.0)
        if cfg.data.get("synthetic_fraction") is not None else -1.0,
        "model": str(net.model_name),
        "img_size": int(net.img_size),
        "patch_size": int(net.patch_size),
        "depth": int(net.get("depth", 0) or 0),
        "embed_dim": int(net.get("embed_dim", 0) or 0),
        "lr": float(cfg.model.optimizer.lr),
        "max_epochs": int(cfg.trainer.max_epochs),
    }


def apply_finetune(model, ckpt_path: str, trust_pickle: bool = False) -> None:
    """Load weights from `ckpt_path` (weights only); continue its epoch count and lineage.

    If the class set differs, the classification head keeps its fresh initialisation and a
    warning says so.
    """
    checkpoint = load_checkpoint(ckpt_path, key="finetune_from", trust_pickle=trust_pickle)
    info = checkpoint.get("anomaly_vit", {})
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    parent_classes = info.get("classes") or checkpoint.get("hyper_parameters", {}).get("classes")
    if parent_classes != model.classes:
        state = {k: v for k, v in state.items() if not k.startswith("net.head.")}
        log.warning("class set changed (%s -> %s): the classification head is re-initialised.",
                    parent_classes, model.classes)
    own = model.state_dict()
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
    parent = {"ckpt_path": str(Path(ckpt_path).resolve()), "global_epoch": parent_epoch,
              "run_dir": info.get("config", {}).get("run_dir", str(Path(ckpt_path).resolve().parents[1])),
              "config": {k: info.get("config", {}).get(k) for k in ("hparams", "seed")}}
    model.lineage = [*info.get("lineage", []), parent]
    log.info("fine-tuning from %s (global epoch %d)", ckpt_path, parent_epoch)


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write JSON atomically; NaN/inf become null so any JSON reader accepts the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_finite(payload), indent=2, sort_keys=False, default=str))
    tmp.replace(path)
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

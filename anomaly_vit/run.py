"""Shared glue of the entry points: build the datamodule, config essentials, errors, summaries."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from anomaly_vit.checkpoints import load_checkpoint
from anomaly_vit.data.split import read_split_csv

log = logging.getLogger(__name__)

# Errors a user causes (bad path, bad config value, bad image): shown as one message, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, FloatingPointError)
# torch's message when a checkpoint's weights do not fit the model (another architecture)
STATE_DICT_MISMATCH = "Error(s) in loading state_dict"
MAX_MISMATCH_NAMES = 5  # parameter names of torch's mismatch details shown in the message


class UserError(SystemExit):
    """Exit with a one-line message (exit code 1) instead of a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Check the config, run `task`; a user error prints `error: <message>` (one line) and exits
    1. AVIT_TRACEBACK=1 re-raises it with its traceback instead, as does running under pytest
    unless AVIT_TRACEBACK=0."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            _check_config(cfg)
            return task(cfg)
        except Exception as error:
            message = user_message(error, cfg)
            if message is None or _show_traceback():
                raise
            log.error("%s", message)
            hint = "(set AVIT_TRACEBACK=1 for the full traceback)"
            print(f"\nerror: {message}\n{hint}", file=sys.stderr)
            raise UserError(message) from None

    return wrapped


def _show_traceback() -> bool:
    flag = os.environ.get("AVIT_TRACEBACK")
    return flag == "1" or (flag != "0" and "pytest" in sys.modules)


def _check_config(cfg: DictConfig) -> None:
    """Config values Lightning would accept silently but that are mistakes."""
    for name, node in (cfg.get("callbacks") or {}).items():
        every = node.get("every_n_epochs") if isinstance(node, DictConfig) else None
        valid = isinstance(every, int) and not isinstance(every, bool) and every >= 1
        if every is not None and not valid:
            raise ValueError(
                f"callbacks.{name}.every_n_epochs={every}: must be an integer >= 1 (the number "
                f"of epochs between two runs); to turn the callback off set callbacks.{name}=null"
            )


def user_message(error: BaseException, cfg: DictConfig | None = None) -> str | None:
    """The one-line message to show for `error`, or None when it is not a user error (a bug).

    Hydra wraps errors raised while instantiating (`full_key: data.sources.real`): the user
    error beneath is shown, with a source's `<name>` placeholder filled in from that key. A
    checkpoint whose weights do not fit the model is a user error too (wrong `ckpt_path`).
    """
    full_key = None
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        found = re.search(r"full_key: (\S+)", str(error))
        full_key = found.group(1) if found else full_key
        error = error.__cause__
    if isinstance(error, USER_ERRORS):
        message = _root_message(error)
        if full_key and "<name>" in message:
            message = message.replace("<name>", full_key.rsplit(".", 1)[-1])
        return message
    if isinstance(error, RuntimeError) and STATE_DICT_MISMATCH in str(error):
        text = str(error)
        names = re.findall(r"size mismatch for ([\w.]+)", text)
        for kind in ("Missing", "Unexpected"):
            listed = re.search(rf"{kind} key\(s\) in state_dict: ([^\n]*)", text)
            if listed:
                names += re.findall(r'"([\w.]+)"', listed.group(1))
        more = ", ..." if len(names) > MAX_MISMATCH_NAMES else ""
        shown = ", ".join(names[:MAX_MISMATCH_NAMES]) + more
        ckpt_path = cfg.get("ckpt_path") if cfg is not None else None
        which = f"ckpt_path={ckpt_path}" if ckpt_path else "the checkpoint"
        return (
            f"the weights in {which} do not fit this model: it was trained with another "
            f"architecture ({len(names)} parameter(s) differ: {shown}); resume (ckpt_path) with "
            "the model config it was trained with, or start a new run from its weights with "
            "finetune_from and the same model.net settings"
        )
    return None


def _root_message(error: BaseException) -> str:
    """The message of a user error, on one line. It is the outermost user error beneath Hydra's
    wrappers: a user error raised `from` another one adds context (what to do) to it."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(message.split())


def build_datamodule(
    data_cfg: DictConfig, output_dir: str | Path | None, split_csv: str | Path | None = None
):
    """Instantiate `cfg.data`, generate demo data if configured, scan and split (no decoding).

    With `split_csv` (a run's split.csv) the items keep the split that run recorded.
    """
    datamodule = hydra.utils.instantiate(
        data_cfg, output_dir=str(output_dir) if output_dir else None
    )
    if split_csv is not None:
        real = [name for name, source in datamodule.sources.items() if not source.synthetic]
        datamodule.recorded_split = read_split_csv(split_csv, real)
    datamodule.prepare_data()
    datamodule.prepare()
    return datamodule


def recorded_split_csv(ckpt_path: str | Path | None) -> Path | None:
    """The split.csv of the run a checkpoint belongs to (`<run>/checkpoints/x.ckpt`), if any."""
    if not ckpt_path:
        return None
    path = Path(str(ckpt_path)).expanduser().resolve()
    found = path.parents[1] / "split.csv" if path.parent.name == "checkpoints" else None
    return found if found is not None and found.is_file() else None


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a config group (callbacks, loggers); skip nulls."""
    if not cfg:
        return []
    return [
        hydra.utils.instantiate(node, _convert_="all")
        for node in cfg.values()
        if node and "_target_" in node
    ]


def config_essentials(cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint, summary.json and the sweep report need to know about a run."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return {
        "run_dir": str(cfg.paths.output_dir),
        "seed": cfg.seed,
        "data": data,
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "trainer": {
            k: v
            for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items()
            if k in ("max_epochs", "precision", "accelerator", "devices", "num_nodes", "strategy")
        },
        "hparams": _flat_hparams(cfg),
        "finetune_from": cfg.get("finetune_from"),
        "overrides": _task_overrides(),
    }


def _task_overrides() -> list[str]:
    """The command-line overrides of this Hydra job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(OmegaConf.select(HydraConfig.get(), "overrides.task", default=[]) or [])


def _flat_hparams(cfg: DictConfig) -> dict[str, float | int | str | bool]:
    """The few knobs a sweep compares, flattened for TensorBoard's hparams tab."""
    net = cfg.model.net
    return {
        "seed": int(cfg.seed),
        "synthetic_fraction": float(cfg.data.get("synthetic_fraction") or 0.0)
        if cfg.data.get("synthetic_fraction") is not None
        else -1.0,
        "model": str(net.model_name),
        "img_size": int(net.img_size),
        "patch_size": int(net.patch_size),
        "depth": int(net.get("depth", 0) or 0),
        "embed_dim": int(net.get("embed_dim", 0) or 0),
        "lr": float(cfg.model.optimizer.lr),
        "max_epochs": int(cfg.trainer.max_epochs),
    }


def apply_finetune(model, ckpt_path: str, trust_pickle: bool = False) -> None:
    """Start `model` from the weights in `ckpt_path`; continue its epoch count and lineage.

    Loads the network weights only (`weights_only`; no optimizer, schedule or epoch: those start
    fresh). If the class set differs, the classification head keeps its fresh initialisation
    and a warning says so. The parent (checkpoint, global epoch, run dir, config essentials) is
    appended to `model.lineage`, and `model.epoch_offset` makes this run's first epoch the
    parent's global epoch + 1.
    """
    checkpoint = load_checkpoint(ckpt_path, key="finetune_from", trust_pickle=trust_pickle)
    info = checkpoint.get("anomaly_vit", {})
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
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

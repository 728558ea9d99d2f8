"""Build a run's objects from its config: the datamodule, config groups, config essentials."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from anomaly_vit.data.split import read_split_csv

log = logging.getLogger(__name__)


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
    datamodule.prepare()
    return datamodule


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
        "img_size": str(net.img_size) if not isinstance(net.img_size, int) else int(net.img_size),
        "patch_size": int(net.patch_size),
        "depth": int(net.get("depth", 0) or 0),
        "embed_dim": int(net.get("embed_dim", 0) or 0),
        "lr": float(cfg.model.optimizer.lr),
        "max_epochs": int(cfg.trainer.max_epochs),
    }

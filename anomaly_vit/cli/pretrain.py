"""Pretrain entry point: `python -m anomaly_vit.pretrain [overrides]` (Hydra).

Self-supervised pretraining of the configured model's ViT on the training images of every
configured source (labels unused) and `pretrain.unlabelled_dir`; the run dir follows train's
contract (metrics.csv, curves.png, TensorBoard, checkpoints by global epoch, rollouts/), and
`python -m anomaly_vit.train finetune_from=<run>/checkpoints/last.ckpt` fine-tunes from it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from anomaly_vit import CONF_DIR
from anomaly_vit.build import build_datamodule, config_essentials, instantiate_list
from anomaly_vit.callbacks.resume_hint import ResumeHint
from anomaly_vit.checkpointing.atomic_io import AtomicCheckpointIO
from anomaly_vit.checkpointing.resume import check_new_run_dir, check_resume
from anomaly_vit.checkpointing.rng_state import RNGStateCheckpoint
from anomaly_vit.cli.train import _prepare_lock, model_net, run_dir_lock, run_fit
from anomaly_vit.ddp import end_job, exclusive
from anomaly_vit.errors import ConfigError, task_wrapper
from anomaly_vit.guards import check_training_config, progress_bar_on, without_progress_bars
from anomaly_vit.rundir import SUMMARY_JSON, recorded_split_csv, write_json
from anomaly_vit.ssl.data import PretrainData
from anomaly_vit.ssl.module import SelfSupervisedViT

log = logging.getLogger(__name__)

# overrides the fine-tune must repeat: the encoder (model), the items and split (data, seed)
_SHARED_ROOTS = ("data", "model", "seed")


def finetune_command(output_dir: str | Path, overrides: list[str]) -> str:
    """The train command that fine-tunes from this pretraining, with its data/model/seed overrides."""
    shared = [o for o in overrides if o.lstrip("+~").split(".")[0].split("=")[0] in _SHARED_ROOTS]
    last = f"finetune_from={output_dir}/checkpoints/last.ckpt"
    return " ".join(["python -m anomaly_vit.train", *shared, last])


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def pretrain_data_config(cfg: DictConfig) -> DictConfig:
    """`cfg.data` with the pretraining's own mix (`pretrain.synthetic_fraction`)."""
    data = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    with open_dict(data):
        data.synthetic_fraction = cfg.pretrain.get("synthetic_fraction")
    return data


def check_pretrain_config(cfg: DictConfig) -> None:
    """The training checks, with the pretraining's optimizer in place of the classifier's."""
    lr = OmegaConf.select(cfg, "pretrain.optimizer.lr")
    if (
        isinstance(lr, bool)
        or not isinstance(lr, int | float)
        or not (math.isfinite(lr) and lr > 0)
    ):
        raise ConfigError(
            f"pretrain.optimizer.lr={lr}: the learning rate must be a number > 0, e.g. 1.5e-3."
        )
    check_training_config(cfg)


def build_pretrain(cfg: DictConfig) -> dict[str, Any]:
    """Every object of a pretraining run, from the config."""
    output_dir = Path(cfg.paths.output_dir)
    resume_from, trust_pickle = cfg.get("ckpt_path"), cfg.get("trust_pickle", False)
    check_new_run_dir(output_dir, resume_from)
    check_pretrain_config(cfg)
    with exclusive(_prepare_lock(cfg)):
        data = build_datamodule(
            pretrain_data_config(cfg), output_dir, recorded_split_csv(resume_from)
        )
    datamodule = PretrainData(data, cfg.pretrain.get("unlabelled_dir"))
    model = SelfSupervisedViT(
        classes=data.classes,
        net=model_net(cfg, data),
        objective=OmegaConf.to_container(cfg.pretrain.objective, resolve=True),
        optimizer=hydra.utils.instantiate(cfg.pretrain.optimizer),
        scheduler=hydra.utils.instantiate(cfg.pretrain.get("scheduler")),
        good_class=cfg.data.good_class,
        name=cfg.model.name,
    )
    model.run_config = config_essentials(cfg) | {
        "task": "pretrain",
        "pretrain": OmegaConf.to_container(cfg.pretrain, resolve=True),
    }
    if resume_from:
        check_resume(
            resume_from,
            output_dir,
            model.run_config,
            trust_pickle=trust_pickle,
            rewind=cfg.get("rewind", False),
        )
    callbacks = [
        *instantiate_list(cfg.get("callbacks")),
        RNGStateCheckpoint(),
        ResumeHint("pretrain"),
    ]
    progress_bar = progress_bar_on(cfg.trainer.get("enable_progress_bar", True))
    callbacks = without_progress_bars(callbacks, progress_bar)
    loggers = instantiate_list(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress_bar,
    )
    return {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}


@task_wrapper
def pretrain(cfg: DictConfig) -> dict[str, Any]:
    """Fit the self-supervised objective (fresh, or resumed from `ckpt_path`); write summary.json."""
    L.seed_everything(cfg.seed, workers=True)
    with run_dir_lock(Path(cfg.paths.output_dir)):
        return _pretrain(cfg)


def _pretrain(cfg: DictConfig) -> dict[str, Any]:
    run = build_pretrain(cfg)
    model, trainer = run["model"], run["trainer"]
    run_fit(cfg, run)  # train's: config text to TensorBoard, then fit (or resume)
    results = {"fit": {"val/loss": model.epoch_metrics.get("val/loss", math.nan)}}
    if trainer.is_global_zero:
        output_dir = Path(cfg.paths.output_dir)
        write_json(
            output_dir / SUMMARY_JSON,
            {
                "run_dir": str(output_dir),
                "task": "pretrain",
                "global_epoch": model.global_epoch - 1,
                "objective": model.objective_kind,
                "classes": model.classes,
                "config": model.run_config,
                "lineage": model.lineage,
                "data": run["datamodule"].summary(),
                **results,
            },
        )
        print(f"\nPretraining written to {output_dir}")
        print(f"fine-tune: {finetune_command(output_dir, _task_overrides())}")
    return results


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="pretrain")
def main(cfg: DictConfig) -> None:
    """Pretrain; a DDP job ends its process group whatever happens."""
    failed = True
    try:
        pretrain(cfg)
        failed = False
    finally:
        end_job(failed=failed)


if __name__ == "__main__":
    main()

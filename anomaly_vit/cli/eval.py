"""Evaluate a checkpoint: `python -m anomaly_vit.eval ckpt_path=.../best.ckpt` (Hydra).

Rebuilds the data (and split) from the config stored in the checkpoint, so the test metrics
match the training run's; `data.*` overrides change them (e.g. another data root). The stored
config is data: it may only name the project's own data classes (`anomaly_vit.stored_config`).
The split is the run's own (`<run>/split.csv`): items added since are left out, items removed
since are listed, and no training item is ever tested.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from anomaly_vit import CONF_DIR
from anomaly_vit.build import build_datamodule
from anomaly_vit.checkpointing.load import check_classifier_checkpoint, load_checkpoint
from anomaly_vit.errors import CheckpointError, ConfigError, DataError, task_wrapper
from anomaly_vit.guards import progress_bar_on
from anomaly_vit.model.calibration import checkpoint_threshold
from anomaly_vit.model.module import ViTClassifier
from anomaly_vit.rundir import CONFUSION_PNG, SUMMARY_JSON, recorded_split_csv, write_json
from anomaly_vit.stored_config import checked_data_config
from anomaly_vit.viz.confusion import save_confusion

log = logging.getLogger(__name__)


@task_wrapper
def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test `cfg.ckpt_path` on the real test split; write summary.json and confusion.png."""
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            "ckpt_path is required: python -m anomaly_vit.eval ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt"
        )
    checkpoint = load_checkpoint(cfg.ckpt_path, key="ckpt_path", trust_pickle=cfg.trust_pickle)
    check_classifier_checkpoint(checkpoint, cfg.ckpt_path, "ckpt_path")
    info = checkpoint.get("anomaly_vit", {})
    if "data" not in info.get("config", {}):
        raise CheckpointError(
            f"ckpt_path={cfg.ckpt_path} carries no data config; it was not written by anomaly_vit.train."
        )
    origin = f"ckpt_path={cfg.ckpt_path}"
    stored = checked_data_config(info["config"]["data"], origin, cfg.get("trusted_targets") or ())
    L.seed_everything(info["config"].get("seed", 0), workers=True)
    data_cfg = OmegaConf.merge(OmegaConf.create(stored), cfg.get("data") or {})
    data_cfg.progress = False
    data_cfg.demo = None  # evaluate on what exists; never regenerate here
    output_dir = Path(cfg.paths.output_dir)
    split_csv = cfg.get("split_csv") or recorded_split_csv(cfg.ckpt_path)
    if split_csv is None:
        raise CheckpointError(
            f"ckpt_path={cfg.ckpt_path} has no split.csv beside its checkpoints/ folder, so the "
            "training run's test split is unknown; set split_csv=<run>/split.csv."
        )
    datamodule = build_datamodule(data_cfg, output_dir, split_csv)
    model = ViTClassifier.from_checkpoint(cfg.ckpt_path, checkpoint=checkpoint)
    if list(datamodule.classes) != model.classes:
        raise DataError(
            f"the data has classes {datamodule.classes} but the checkpoint {model.classes}."
        )
    threshold, policy = checkpoint_threshold(
        cfg.ckpt_path, model, cfg.get("threshold_policy"), cfg.get("threshold")
    )
    model.defect_threshold.fill_(threshold)
    progress_bar = progress_bar_on(cfg.trainer.get("enable_progress_bar", True))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=False, enable_progress_bar=progress_bar
    )
    trainer.test(model, datamodule=datamodule)
    results = model.test_results
    save_confusion(
        results["test/confusion"],
        model.classes,
        output_dir / CONFUSION_PNG,
        title=f"test, balanced acc {results['test/balanced_acc']:.3f}",
    )
    summary = {
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
        "global_epoch": info.get("global_epoch"),
        "classes": model.classes,
        "threshold_policy": policy,
        "test": results,
        "data": datamodule.summary(),
    }
    write_json(output_dir / SUMMARY_JSON, summary)
    print(f"\nEvaluation written to {output_dir}")
    return results


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()

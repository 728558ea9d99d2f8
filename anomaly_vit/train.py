"""Train entry point: `python -m anomaly_vit.train [overrides]` (Hydra). Thin: build and run."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

from anomaly_vit.checkpoint_io import AtomicCheckpointIO
from anomaly_vit.run import (
    apply_finetune,
    build_datamodule,
    config_essentials,
    instantiate_list,
    task_wrapper,
    write_json,
)

log = logging.getLogger(__name__)


@task_wrapper
def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then test the best checkpoint on the real test split; write summary.json."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = build_datamodule(cfg.data, output_dir)
    model = hydra.utils.instantiate(cfg.model, classes=datamodule.classes, _convert_="all")
    model.run_config = config_essentials(cfg)
    if cfg.get("finetune_from"):
        apply_finetune(model, cfg.finetune_from, trust_pickle=cfg.get("trust_pickle", False))
    callbacks = instantiate_list(cfg.get("callbacks"))
    loggers = instantiate_list(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    log.info("run dir: %s", output_dir)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    results: dict[str, Any] = {"fit": {k: v for k, v in model.epoch_metrics.items() if not isinstance(v, list)}}
    if cfg.get("test", True):
        monitored = [cb for cb in trainer.checkpoint_callbacks if cb.monitor]
        best = monitored[0].best_model_path if monitored else ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
        results["test"] = model.test_results
        results["best_checkpoint"] = best
    if trainer.is_global_zero:
        summary = {
            "run_dir": str(output_dir),
            "global_epoch": model.global_epoch - 1,
            "classes": model.classes,
            "config": model.run_config,
            "lineage": model.lineage,
            "data": datamodule.summary(),
            **results,
        }
        write_json(output_dir / "summary.json", summary)
        for logger in trainer.loggers:
            test = results.get("test", {})
            finite = {k: v for k, v in test.items() if isinstance(v, float) and math.isfinite(v)}
            logger.log_hyperparams(model.run_config.get("hparams", {}), finite)
        log.info("done: %s", output_dir)
        print(f"\nRun written to {output_dir}")
        if "test" in results:
            print(f"test balanced accuracy: {results['test'].get('test/balanced_acc', float('nan')):.3f}")
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    value = results.get("fit", {}).get(cfg.get("optimized_metric") or "", None)
    return value


if __name__ == "__main__":
    main()

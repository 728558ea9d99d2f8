"""Train entry point: `python -m anomaly_vit.train [overrides]` (Hydra).

Thin: `build_run(cfg)` builds every object from the config, then fit, test, summarise.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import AsyncCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from anomaly_vit import CONF_DIR
from anomaly_vit.build import build_datamodule, config_essentials, instantiate_list
from anomaly_vit.callbacks.resume_hint import ResumeHint
from anomaly_vit.checkpointing.atomic_io import AtomicCheckpointIO
from anomaly_vit.checkpointing.best import best_trackers_first, checked_best_path
from anomaly_vit.checkpointing.finetune import apply_finetune
from anomaly_vit.checkpointing.load import load_checkpoint
from anomaly_vit.checkpointing.resume import check_new_run_dir, check_resume
from anomaly_vit.checkpointing.rng_state import RNGStateCheckpoint
from anomaly_vit.ddp import end_job, exclusive
from anomaly_vit.errors import ConfigError, UserError, task_wrapper
from anomaly_vit.guards import (
    check_classes,
    check_training_config,
    progress_bar_on,
    without_progress_bars,
)
from anomaly_vit.maps.scorer import tensorboard_metrics
from anomaly_vit.model.thresholds import parse_policy
from anomaly_vit.rundir import (
    ERROR_TXT,
    SUMMARY_JSON,
    recorded_split_csv,
    run_lock,
    write_json,
    write_text,
)
from anomaly_vit.sweep.objective import in_multirun, objective, worst_value

log = logging.getLogger(__name__)

RUN_DIR_KEYS = ("hydra", "run_dir", "hydra_subdir")  # resolving these claims a run folder


def model_net(cfg: DictConfig, datamodule) -> dict[str, Any]:
    """`cfg.model.net` with `img_size: auto` replaced by the size the data chose."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    if str(net.get("img_size")) == "auto":
        net["img_size"] = list(datamodule.input_hw)
    return net


def _prepare_lock(cfg: DictConfig) -> Path | None:
    """A lock file beside the demo data, so DDP ranks and parallel sweep jobs generate it once."""
    out_dir = (cfg.data.get("demo") or {}).get("out_dir")
    return Path(out_dir).parent / f".{Path(out_dir).name}.lock" if out_dir else None


def config_markdown(cfg: DictConfig, overrides: list[str]) -> str:
    """The run's config as TensorBoard text: the overrides, then the resolved YAML as a code block
    (the `hydra` node left out; unresolvable interpolations are shown as written)."""
    shown = OmegaConf.masked_copy(cfg, [key for key in cfg if key not in RUN_DIR_KEYS])
    try:
        text = OmegaConf.to_yaml(shown, resolve=True)
    except Exception:  # noqa: BLE001 - e.g. ${hydra:...} outside a Hydra job: show it unresolved
        text = OmegaConf.to_yaml(shown)
    code = "\n".join(f"    {line}" for line in text.splitlines())
    given = " ".join(f"`{o}`" for o in overrides) or "none"
    return f"overrides: {given}\n\n{code}\n"


@rank_zero_only
def log_config_text(loggers: list, cfg: DictConfig, overrides: list[str], step: int) -> None:
    """TensorBoard text `config` at `step` (the global epoch the run starts from)."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text("config", config_markdown(cfg, overrides), global_step=step)


def build_run(cfg: DictConfig) -> dict[str, Any]:
    """Every object of a training run, from the config (the template's `object_dict`):
    datamodule, model (resumed or fine-tuned weights wired in), callbacks, loggers, trainer."""
    output_dir = Path(cfg.paths.output_dir)
    resume_from, trust_pickle = cfg.get("ckpt_path"), cfg.get("trust_pickle", False)
    if resume_from and cfg.get("finetune_from"):
        raise ConfigError(
            f"ckpt_path={resume_from} and finetune_from={cfg.finetune_from} are both set: "
            "ckpt_path resumes that run (its weights, optimizer and epochs, into its folder), "
            "finetune_from starts a new run from a checkpoint's weights; set only one."
        )
    check_new_run_dir(output_dir, resume_from)
    check_training_config(cfg)
    with exclusive(_prepare_lock(cfg)):
        split_csv = recorded_split_csv(resume_from) or cfg.get("split_csv")
        datamodule = build_datamodule(cfg.data, output_dir, split_csv)
    check_classes(datamodule.classes)
    balanced = {} if cfg.model.get("class_weights") else datamodule.loss_balance()
    model = hydra.utils.instantiate(
        cfg.model,
        classes=datamodule.classes,
        net=model_net(cfg, datamodule),
        _convert_="all",
        **balanced,
    )
    model.run_config = config_essentials(cfg)
    if resume_from:
        check_resume(
            resume_from,
            output_dir,
            model.run_config,
            trust_pickle=trust_pickle,
            rewind=cfg.get("rewind", False),
        )
    elif cfg.get("finetune_from"):
        apply_finetune(model, cfg.finetune_from, trust_pickle=trust_pickle)
    # exact resume; on Ctrl-C, the command that resumes
    callbacks = [*instantiate_list(cfg.get("callbacks")), RNGStateCheckpoint(), ResumeHint("train")]
    callbacks = best_trackers_first(callbacks)
    progress_bar = progress_bar_on(cfg.trainer.get("enable_progress_bar", True))
    callbacks = without_progress_bars(callbacks, progress_bar)
    loggers = instantiate_list(cfg.get("logger"))
    checkpoint_io = AtomicCheckpointIO()
    if cfg.get("checkpoint_in_background", True):
        checkpoint_io = AsyncCheckpointIO(checkpoint_io)  # copies the tensors, then writes aside
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[checkpoint_io],
        enable_progress_bar=progress_bar,
    )
    scorer = cfg.get("explain_scores")
    calibration = cfg.get("calibration")
    parse_policy(cfg.get("threshold_policy", "youden"), "threshold_policy")  # fail before fitting
    return {
        "cfg": cfg,
        "datamodule": datamodule,
        "model": model,
        "callbacks": callbacks,
        "loggers": loggers,
        "trainer": trainer,
        "map_scorer": hydra.utils.instantiate(scorer, _convert_="all") if scorer else None,
        "calibrator": hydra.utils.instantiate(calibration, _convert_="all")
        if calibration
        else None,
    }


@task_wrapper
def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (fresh, resumed from `ckpt_path`, or fine-tuned from `finetune_from`), then test the
    best checkpoint on the real test split; write summary.json."""
    return fit_and_test(cfg)[1]


def fit_and_test(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """`train` without its error handling: (the run's objects, its results). The model holds
    the tested (best) weights afterwards; cross-validation scores its fold with them."""
    L.seed_everything(cfg.seed, workers=True)
    with run_dir_lock(Path(cfg.paths.output_dir)):
        run = build_run(cfg)
        run_fit(cfg, run)
        results = run_test(cfg, run)
        if run["trainer"].is_global_zero:
            results |= run_map_scores(run, results)
            results |= run_calibration(cfg, run, results)
            summarise(cfg, run, results)
    return run, results


def run_dir_lock(output_dir: Path) -> contextlib.AbstractContextManager:
    """The run dir's lock (`rundir.run_lock`) in the launching process; DDP ranks > 0 write into
    the run their rank 0 holds, so they take none."""
    rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")) or 0)
    return run_lock(output_dir) if rank == 0 else contextlib.nullcontext()


def run_fit(cfg: DictConfig, run: dict[str, Any]) -> None:
    """Log the config to TensorBoard and fit (resuming from `ckpt_path` when set)."""
    model, trainer = run["model"], run["trainer"]
    log_config_text(trainer.loggers, cfg, model.run_config.get("overrides", []), model.epoch_offset)
    log.info("run dir: %s", cfg.paths.output_dir)
    trainer.fit(
        model,
        datamodule=run["datamodule"],
        ckpt_path=cfg.get("ckpt_path"),
        weights_only=not cfg.get("trust_pickle", False),
    )


def run_test(cfg: DictConfig, run: dict[str, Any]) -> dict[str, Any]:
    """The last validation's metrics, the best score and (unless `test=false`) the best
    checkpoint's metrics on the test split."""
    model, trainer = run["model"], run["trainer"]
    results: dict[str, Any] = {
        "fit": {k: v for k, v in model.epoch_metrics.items() if not isinstance(v, list)}
    }
    monitored = [cb for cb in trainer.checkpoint_callbacks if cb.monitor]
    if monitored and monitored[0].best_model_score is not None:
        results["best_score"] = {monitored[0].monitor: float(monitored[0].best_model_score)}
    if cfg.get("test", True):
        trust_pickle = bool(cfg.get("trust_pickle", False))
        # rank 0 writes the checkpoints (in the background): every rank waits until they exist
        trainer.strategy.barrier("checkpoints written")
        best = checked_best_path(
            monitored[0].best_model_path if monitored else "", Path(cfg.paths.output_dir)
        )
        if best:  # the clear message of a refused or broken file, before Lightning loads it
            load_checkpoint(best, key="the best checkpoint", trust_pickle=trust_pickle)
        trainer.test(
            model,
            datamodule=run["datamodule"],
            ckpt_path=best or None,
            weights_only=not trust_pickle,
        )
        results["test"] = model.test_results
        results["best_checkpoint"] = best
    return results


def run_calibration(cfg: DictConfig, run: dict[str, Any], results: dict[str, Any]) -> dict:
    """{"thresholds": ..., "pixel_threshold": ...} of the tested checkpoint (`calibration`;
    model.calibration); {} when not tested or not configured."""
    calibrator = run.get("calibrator")
    if calibrator is None or "test" not in results:
        return {}
    blocks = calibrator(run["model"], run["datamodule"], cfg.get("threshold_policy", "youden"))
    chosen = blocks["thresholds"]["policies"][blocks["thresholds"]["default_policy"]]
    log.info(
        "threshold policy %s: %.4f (validation %s)",
        blocks["thresholds"]["default_policy"],
        chosen["threshold"],
        {k: chosen["val"][k] for k in ("tp", "fp", "tn", "fn")},
    )
    return blocks


def run_map_scores(run: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """{"explain": block}: the tested checkpoint's maps scored on every defective real test image
    with a mask (`explain_scores`; maps.scorer); {} when not tested or not configured."""
    scorer = run.get("map_scorer")
    if scorer is None or "test" not in results:
        return {}
    block = scorer(run["model"], run["datamodule"])
    if block is None:
        return {}
    log.info(
        "maps scored on %d defective test image(s) with a mask (%d misclassified) in %.1f s",
        block["n_scored"],
        block["n_misclassified"],
        block["seconds"],
    )
    return {"explain": block}


def summarise(cfg: DictConfig, run: dict[str, Any], results: dict[str, Any]) -> None:
    """summary.json, the loggers' hparams with the test metrics, and the last lines printed."""
    model, output_dir = run["model"], Path(cfg.paths.output_dir)
    summary = {
        "run_dir": str(output_dir),
        "global_epoch": model.global_epoch - 1,
        "classes": model.classes,
        "config": model.run_config,
        "lineage": model.lineage,
        "data": run["datamodule"].summary(),
        **results,
    }
    write_json(output_dir / SUMMARY_JSON, summary)
    test_metrics = results.get("test", {})
    finite = {k: v for k, v in test_metrics.items() if isinstance(v, float) and math.isfinite(v)}
    if "explain" in results:
        finite |= tensorboard_metrics(results["explain"])
    for logger in run["trainer"].loggers:
        logger.log_hyperparams(model.run_config.get("hparams", {}), finite)
    log.info("done: %s", output_dir)
    print(f"\nRun written to {output_dir}")
    if "test" in results:
        print(f"test balanced accuracy: {test_metrics.get('test/balanced_acc', float('nan')):.3f}")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train; return `optimized_metric` to a sweeper. In a multirun, a failed job is logged and
    scores the worst value instead of ending the sweep."""
    failed = True
    try:
        results = train(cfg)
        failed = False
    except (Exception, UserError) as error:
        if not in_multirun():
            raise
        if isinstance(error, UserError):
            reason = error.message
            log.error("job failed: %s; the sweep goes on", reason)
        else:
            reason = f"internal error (a bug): {type(error).__name__}: {error}"
            log.exception("job failed; the sweep goes on")
        if rank_zero_only.rank == 0:  # the sweep report says why (one line)
            write_text(Path(cfg.paths.output_dir) / ERROR_TXT, " ".join(reason.split()) + "\n")
        return worst_value()
    finally:
        end_job(failed=failed)
    return objective(results, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()

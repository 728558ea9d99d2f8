"""Cross-validation entry point: `python -m anomaly_vit.cv data=... cv.folds=5 [train overrides]`.

Folds by item, stratified by label and seeded (`anomaly_vit.crossval.folds`); each fold is a
normal run dir under one cv folder (`outputs/cv/<time>_<name>/fold_<k>/`), trained by the arm
`cv.arm` (vit: the training run as `anomaly_vit.train` makes it; peer: the ResNet-18) and tested
on its held-out items; the out-of-fold scores are pooled into cv_summary.json, oof_scores.csv and
cv.png (`anomaly_vit.crossval.pooled`). A finished fold is never rerun: `cv.dir=<cv folder>`
carries on where a run stopped, `cv.only=[0,2]` runs some folds (parallel processes on one
folder), `cv.aggregate=true` pools what is there. Settings: conf/cv.yaml.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from anomaly_vit import CONF_DIR
from anomaly_vit.build import build_datamodule
from anomaly_vit.crossval.arms import ARMS, FALLBACK, Arm, FoldOutcome
from anomaly_vit.crossval.folds import (
    CV_CONFIG_JSON,
    CV_PNG,
    CV_SUMMARY_JSON,
    FOLD_JSON,
    FOLDS_CSV,
    OOF_CSV,
    FoldPlan,
    check_only,
    finished_folds,
    fold_dir,
    is_finished,
    read_fold_row,
    read_folds_csv,
)
from anomaly_vit.crossval.pooled import (
    OOF_COLUMNS,
    Bootstrap,
    fold_metrics,
    pooled_block,
    pooled_maps,
    read_oof,
    spread,
)
from anomaly_vit.errors import enum_value, task_wrapper
from anomaly_vit.rundir import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    HYDRA_DIR,
    LAST_CHECKPOINT,
    SUMMARY_JSON,
    read_json,
    write_dict_rows,
    write_json,
    write_text,
)

log = logging.getLogger(__name__)


@task_wrapper
def cross_validate(cfg: DictConfig) -> dict[str, Any] | None:
    """Run the folds `cv.only` asks for (those not finished), then pool every finished fold;
    returns cv_summary.json's content (None when folds are still missing)."""
    settings = cfg.cv
    arm = enum_value(Arm, settings.arm, "cv.arm")
    cv_dir = Path(cfg.paths.output_dir)
    boot = Bootstrap(int(settings.bootstrap.n_boot), float(settings.bootstrap.level),
                     int(settings.bootstrap.seed))  # fmt: skip
    if settings.get("threads"):
        torch.set_num_threads(int(settings.threads))
    if settings.get("aggregate"):
        folds = _recorded_folds(cv_dir)
        config = _recorded_config(cv_dir) or _essentials(cfg, arm, folds)
        return aggregate(cv_dir, folds, boot, config, partial_ok=True)
    plan = _plan(cfg, cv_dir)
    config = _claim_config(cv_dir, _essentials(cfg, arm, plan.folds))
    wanted = check_only(settings.get("only"), plan.folds)
    print(
        f"cv: {plan.folds} folds of {len(plan.fold_of_item)} items ({arm.value} arm) in {cv_dir}; "
        f"items per fold and label: {plan.counts()}",
        flush=True,
    )
    for fold in wanted:
        if is_finished(cv_dir, fold):
            log.info("cv: fold %d is finished (%s): kept, not rerun", fold, fold_dir(cv_dir, fold))
            continue
        run_fold(cfg, plan, arm, cv_dir, fold)
    return aggregate(cv_dir, plan.folds, boot, config)


def _recorded_config(cv_dir: Path) -> dict[str, Any]:
    """The folder's cv_config.json; for a folder made before it existed, the config of its
    cv_summary.json; {} when neither is there yet."""
    for path, key in ((cv_dir / CV_CONFIG_JSON, None), (cv_dir / CV_SUMMARY_JSON, "config")):
        if path.is_file():
            return read_json(path) if key is None else read_json(path).get(key, {})
    return {}


def _claim_config(cv_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The config essentials of the cv folder: written by its first run; a later run (resume,
    cv.only) must train the same arm, or two models' scores would be pooled as one."""
    recorded = _recorded_config(cv_dir)
    if not recorded:
        write_json(cv_dir / CV_CONFIG_JSON, config)
        return config
    if recorded.get("arm") != config["arm"]:
        raise ValueError(
            f"cv.arm={config['arm']} but cv.dir={cv_dir} holds the {recorded.get('arm')} arm's "
            f"folds: pooling both would mix two models; use cv.arm={recorded.get('arm')} there, "
            "or leave cv.dir unset for a new cv folder."
        )
    return recorded


def _recorded_folds(cv_dir: Path) -> int:
    path = cv_dir / FOLDS_CSV
    if not path.is_file():
        raise FileNotFoundError(
            f"cv.aggregate=true: {path} does not exist, so {cv_dir} is not a cv folder; give "
            "cv.dir=<the cv folder> (outputs/cv/<time>_<name>)."
        )
    return max(read_folds_csv(path).values()) + 1


def _plan(cfg: DictConfig, cv_dir: Path) -> FoldPlan:
    """The folds: drawn from the data (no pixels decoded) and checked before anything trains,
    or followed from the folder's folds.csv when it has one; splits/fold_<k>.csv written."""
    datamodule = build_datamodule(cfg.data, None)
    real = [n for n, s in datamodule.sources.items() if not s.synthetic]
    settings = cfg.cv
    plan = FoldPlan.from_index(
        datamodule.index, real, settings.folds, int(settings.seed), float(settings.val_share),
        real_fraction=datamodule.real_fraction,
    )  # fmt: skip
    recorded = cv_dir / FOLDS_CSV
    if recorded.is_file():
        fold_of_item = read_folds_csv(recorded)
        n_recorded = max(fold_of_item.values()) + 1
        if n_recorded != plan.folds:
            raise ValueError(
                f"cv.folds={plan.folds} but {recorded} holds {n_recorded} folds: use "
                f"cv.folds={n_recorded} to carry on in {cv_dir}, or leave cv.dir unset for a new "
                "cv folder."
            )
        plan.follow(fold_of_item)
    else:
        plan.write_folds_csv(cv_dir)
    for fold in range(plan.folds):
        plan.write_split_csv(cv_dir, fold)
    return plan


def fold_config(cfg: DictConfig, cv_dir: Path, fold: int) -> DictConfig:
    """The training config of fold `fold`: its run dir, its split file, tested at the end,
    resumed from its last.ckpt when an interrupted run left one."""
    folder = fold_dir(cv_dir, fold)
    last = folder / CHECKPOINTS_DIR / LAST_CHECKPOINT
    fold_cfg = copy.deepcopy(cfg)
    with open_dict(fold_cfg):
        fold_cfg.paths.output_dir = str(folder)
        fold_cfg.split_csv = str(cv_dir / "splits" / f"fold_{fold}.csv")
        fold_cfg.ckpt_path = str(last) if last.is_file() else None
        fold_cfg.test = True
        fold_cfg.run_name = f"{cfg.run_name}_fold{fold}"
    return fold_cfg


def _set_aside(folder: Path) -> None:
    """An interrupted fold without a checkpoint to resume from starts afresh; what it left
    is kept beside it (`fold_<k>.interrupted_<time>`), never deleted."""
    if not any(folder.iterdir()):
        return
    aside = folder.with_name(f"{folder.name}.interrupted_{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    shutil.move(str(folder), str(aside))
    log.warning(
        "cv: %s was interrupted before its first checkpoint: moved to %s, rerun", folder, aside
    )


def run_fold(cfg: DictConfig, plan: FoldPlan, arm: Arm, cv_dir: Path, fold: int) -> dict:
    """Train and test one fold; write its oof_scores.csv, then its cv_fold.json (last)."""
    fold_cfg = fold_config(cfg, cv_dir, fold)
    folder = Path(fold_cfg.paths.output_dir)
    if folder.is_dir() and not fold_cfg.ckpt_path:
        _set_aside(folder)
    if arm is Arm.VIT and fold_cfg.ckpt_path:
        log.info("cv: fold %d resumes from %s", fold, fold_cfg.ckpt_path)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / HYDRA_DIR / CONFIG_FILE, OmegaConf.to_yaml(_without_hydra(fold_cfg)))
    n_val_defects = plan.val_defects(fold)
    if not n_val_defects:
        log.warning(
            "cv: fold %d: its validation part holds no defective item (too few defective items "
            "outside the fold for cv.val_share=%s), so no threshold can be chosen on it: %s",
            fold, plan.val_share, FALLBACK,
        )  # fmt: skip
    print(f"cv: fold {fold + 1}/{plan.folds} ({arm.value}) -> {folder}", flush=True)
    started = time.perf_counter()
    outcome: FoldOutcome = ARMS[arm](fold_cfg, cfg.cv)
    wall_s = time.perf_counter() - started
    rows = oof_rows(outcome, fold)
    write_dict_rows(folder / OOF_CSV, OOF_COLUMNS, rows)
    row = {
        "fold": fold,
        **fold_metrics(rows),
        "threshold": outcome.threshold,
        "threshold_from": "validation" if outcome.threshold_chosen else FALLBACK,
        "val_defect_items": n_val_defects,
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.epochs_run,
        "wall_s": wall_s,
        "run_dir": str(folder),
        **outcome.run_info,
    }
    write_json(folder / FOLD_JSON, row)
    print(
        f"cv: fold {fold}: {row['n']} photos, AUROC {row['auroc']:.3f}, balanced acc "
        f"{row['balanced_acc']:.3f} at threshold {row['threshold']:.3f}, {wall_s:.0f} s",
        flush=True,
    )
    return row


def _without_hydra(cfg: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def oof_rows(outcome: FoldOutcome, fold: int) -> list[dict[str, Any]]:
    """One row per held-out photo: path, item, fold, label, is_defect, score, predicted."""
    return [
        {
            "path": record.path,
            "item": record.item_id,
            "fold": fold,
            "label": label,
            "is_defect": int(defect),
            "score": float(score),
            "predicted": int(score >= outcome.threshold),
        }
        for record, label, defect, score in zip(
            outcome.records, outcome.labels, outcome.is_defect, outcome.scores, strict=True
        )
    ]


def _essentials(cfg: DictConfig, arm: Arm, folds: int) -> dict[str, Any]:
    """What cv_summary.json says about how it was made."""
    from anomaly_vit.build import _task_overrides

    settings = OmegaConf.to_container(cfg.cv, resolve=True)
    data = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items()
            if k in ("name", "manifest", "root", "task", "img_size", "pixel_budget", "resize")}  # fmt: skip
    return {
        "arm": arm.value,
        "folds": folds,
        "fold_seed": settings["seed"],
        "val_share": settings["val_share"],
        "bootstrap": settings["bootstrap"],
        "seed": int(cfg.seed),
        "data": data,
        "model": str(cfg.model.get("name")) if arm is Arm.VIT else "resnet18",
        "max_epochs": int(cfg.trainer.max_epochs) if arm is Arm.VIT else settings["peer"]["epochs"],
        **({"peer": settings["peer"]} if arm is Arm.PEER else {}),
        "overrides": _task_overrides(),
    }


def aggregate(
    cv_dir: Path, folds: int, boot: Bootstrap, config: dict[str, Any], partial_ok: bool = False
) -> dict[str, Any] | None:
    """Pool the finished folds into oof_scores.csv, cv_summary.json and cv.png. Without
    `partial_ok` nothing is pooled while a fold is missing (one line says which and how)."""
    from anomaly_vit.viz.cv import save_cv_plot

    done = finished_folds(cv_dir, folds)
    missing = [k for k in range(folds) if k not in done]
    if missing and not (partial_ok and done):
        what = f"fold(s) {missing} of {folds} are not finished in {cv_dir}"
        if partial_ok:
            raise ValueError(f"{what}: nothing to pool yet; run them with cv.dir={cv_dir}.")
        print(
            f"cv: {what}: run them (cv.dir={cv_dir} cv.only=[{','.join(map(str, missing))}]), "
            "or pool the finished "
            f"ones with cv.dir={cv_dir} cv.aggregate=true",
            flush=True,
        )
        return None
    if missing:
        log.warning("cv: pooling %d of %d folds; missing fold(s): %s", len(done), folds, missing)
        print(f"cv: pooled {len(done)} of {folds} folds; missing fold(s): {missing}", flush=True)
    rows = [row for k in done for row in read_oof(fold_dir(cv_dir, k) / OOF_CSV)]
    check_once(rows)
    fold_rows = [read_fold_row(cv_dir, k) for k in done]
    explain = [_explain_block(cv_dir, k) for k in done]
    summary = {
        "pooled": pooled_block(rows, boot) | {"folds_pooled": done, "missing_folds": missing},
        "folds": fold_rows,
        "fold_mean_std": spread(fold_rows),
        "maps": pooled_maps(explain),
        "config": config,
        "wall_s": sum(float(r["wall_s"]) for r in fold_rows),
    }
    write_dict_rows(cv_dir / OOF_CSV, OOF_COLUMNS, rows)
    write_json(cv_dir / CV_SUMMARY_JSON, summary)
    save_cv_plot(rows, summary["pooled"], cv_dir / CV_PNG, title=_title(config))
    print_summary(summary, cv_dir)
    return summary


def check_once(rows: list[dict[str, Any]]) -> None:
    """Every photo is pooled once: two folds scoring one photo means their folds were drawn
    from different data (a bug or a mixed-up folder), and the pooled numbers would be wrong."""
    seen: dict[str, int] = {}
    for row in rows:
        if row["path"] in seen:
            raise ValueError(
                f"{row['path']} is scored by fold {seen[row['path']]} and fold {row['fold']}: "
                "the folds' oof_scores.csv do not come from one set of folds; rerun those folds "
                "in a new cv folder."
            )
        seen[row["path"]] = row["fold"]


def _explain_block(cv_dir: Path, fold: int) -> dict[str, Any] | None:
    path = fold_dir(cv_dir, fold) / SUMMARY_JSON
    return read_json(path).get("explain") if path.is_file() else None


def _title(config: dict[str, Any]) -> str:
    return f"{config['data'].get('name', 'data')}, {config['arm']} ({config['model']}), {config['folds']}-fold cv"


def print_summary(summary: dict[str, Any], cv_dir: Path) -> None:
    pooled = summary["pooled"]
    level = int(round(pooled["bootstrap"]["level"] * 100))
    print(f"\ncv: {pooled['n_images']} photos ({pooled['n_defect']} defective), pooled over folds "
          f"{pooled['folds_pooled']} ({level}% bootstrap intervals):")  # fmt: skip
    for name in ("auroc", "ap", "balanced_acc"):
        low, high = pooled[f"{name}_ci"]
        print(f"  {name:<13} {pooled[name]:.3f}  [{low:.3f}, {high:.3f}]")
    print(f"written to {cv_dir / CV_SUMMARY_JSON}", flush=True)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="cv")
def main(cfg: DictConfig) -> None:
    cross_validate(cfg)


if __name__ == "__main__":
    main()

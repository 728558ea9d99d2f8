"""The cross-validated comparison: the ViT recipe and the ResNet-18 peer on the same folds of
the same photos, pooled over every photo, in one table.

Either runs `python -m anomaly_vit.cv` once per arm (`real_cv.manifest`, `real_cv.arms`; the
same data, folds and fold seed, so every photo is tested by both arms in the same fold), or
reads cv folders made before (`real_cv.cv_dirs`, e.g. runs of several sets on a GPU machine)
and only tabulates them. Folders of the same photos are checked to hold the same folds.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from anomaly_vit.bench.report import markdown_table, plain_table
from anomaly_vit.crossval.folds import CV_SUMMARY_JSON, OOF_CSV
from anomaly_vit.crossval.pooled import METRICS, Bootstrap, paired_difference, read_oof
from anomaly_vit.rundir import read_json

HEADER = ("data", "arm", "model", "photos (defective)", "AUROC", "AP", "balanced acc",
          "minus the peer, paired: AUROC; balanced acc", "peer", "wall a fold", "folds",
          "same folds as")  # fmt: skip


def run_arms(settings: dict[str, Any], overrides: list[str], out_dir: Path) -> list[Path]:
    """One cv folder per arm of `settings["arms"]` on `settings["manifest"]`."""
    manifest = settings.get("manifest")
    if not manifest or not Path(manifest).is_file():
        raise FileNotFoundError(
            f"real_cv.manifest={manifest!r} is not a file: give a real defect set's manifest "
            "CSV (real_cv.manifest=../shared/datasets/kolektorsdd/manifest.csv), or compare cv "
            "folders made before with real_cv.cv_dirs=[...]."
        )
    dirs = []
    for arm in settings["arms"]:
        cv_dir = out_dir / str(arm)
        command = [
            sys.executable, "-m", "anomaly_vit.cv", "data=manifest",
            f"data.manifest={Path(manifest).resolve()}", f"cv.folds={int(settings['folds'])}",
            f"cv.arm={arm}", f"cv.dir={cv_dir}", "data.progress=false",
            "trainer.enable_progress_bar=false", "callbacks.progress=null",
            *overrides, *settings.get("cv_overrides", []),
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cv of the {arm} arm failed ({cv_dir}):\n{done.stderr[-3000:]}")
        print(f"[bench] real_cv: {arm} arm in {time.perf_counter() - started:.0f} s", flush=True)
        dirs.append(cv_dir)
    return dirs


def read_cv(cv_dir: Path) -> dict[str, Any]:
    """A cv folder's summary and the fold of each of its photos."""
    path = Path(cv_dir) / CV_SUMMARY_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: real_cv.cv_dirs must name finished cv folders (pool an "
            f"unfinished one with python -m anomaly_vit.cv cv.dir={cv_dir} cv.aggregate=true)."
        )
    summary = read_json(path)
    oof = read_oof(Path(cv_dir) / OOF_CSV)
    fold_of_photo = {r["path"]: r["fold"] for r in oof}
    return {"dir": str(cv_dir), "summary": summary, "oof": oof, "fold_of_photo": fold_of_photo}


def _data_name(config: dict[str, Any]) -> str:
    data = config.get("data", {})
    where = data.get("manifest") or data.get("root")
    return Path(where).parent.name if where else str(data.get("name", "?"))


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _ci(pooled: dict[str, Any], name: str) -> str:
    low, high = pooled[f"{name}_ci"]
    return f"{pooled[name]:.3f} [{low:.3f}, {high:.3f}]"


def _same_folds(run: dict[str, Any], earlier: list[dict[str, Any]]) -> str | None:
    """The first earlier folder of the same photos: its name when the folds match too."""
    for other in earlier:
        if set(other["fold_of_photo"]) == set(run["fold_of_photo"]):
            name = Path(other["dir"]).name
            if other["fold_of_photo"] == run["fold_of_photo"]:
                return name
            return f"NOT {name} (same photos, other folds)"
    return None


def _versus_peer(run: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """This arm minus the strongest peer (highest pooled AUROC) of the same photos in the same
    folds, paired bootstrap with this folder's settings; None for a peer or without one."""
    if run["summary"]["config"]["arm"] == "peer":
        return None
    peers = [
        other
        for other in runs
        if other["summary"]["config"]["arm"] == "peer"
        and other["fold_of_photo"] == run["fold_of_photo"]
    ]
    if not peers:
        return None
    best = max(peers, key=lambda other: other["summary"]["pooled"]["auroc"])
    boot = run["summary"]["pooled"]["bootstrap"]
    settings = Bootstrap(int(boot["n_boot"]), float(boot["level"]), int(boot["seed"]))
    return {"peer_dir": best["dir"]} | paired_difference(run["oof"], best["oof"], settings)


def _signed(diff: dict[str, Any]) -> str:
    low, high = diff["ci"]
    return f"{diff['diff']:+.3f} [{low:+.3f}, {high:+.3f}]"


def compare(cv_dirs: list[Path]) -> dict[str, Any]:
    """One row per cv folder: pooled metrics with intervals, wall time a fold, and which
    earlier folder of the same photos it shares its folds with."""
    runs = [read_cv(Path(d)) for d in cv_dirs]
    rows = []
    for i, run in enumerate(runs):
        summary = run["summary"]
        config, pooled = summary["config"], summary["pooled"]
        walls = [float(f["wall_s"]) for f in summary["folds"]]
        same = _same_folds(run, runs[:i])
        versus = _versus_peer(run, runs)
        rows.append(
            {
                "dir": run["dir"],
                "data": _data_name(config),
                "arm": config["arm"],
                "model": config["model"],
                "n_images": pooled["n_images"],
                "n_defect": pooled["n_defect"],
                **{name: pooled[name] for name in METRICS},
                **{f"{name}_ci": pooled[f"{name}_ci"] for name in METRICS},
                "wall_s_fold_mean": statistics.fmean(walls) if walls else None,
                "wall_s_fold_range": [min(walls), max(walls)] if walls else None,
                "folds_pooled": pooled["folds_pooled"],
                "missing_folds": pooled.get("missing_folds", []),
                "same_folds_as": same,
                "minus_peer": versus,
                "cells": [
                    _data_name(config),
                    config["arm"],
                    str(config["model"]),
                    f"{pooled['n_images']} ({pooled['n_defect']})",
                    *(_ci(pooled, name) for name in METRICS),
                    f"{_signed(versus['auroc'])}; {_signed(versus['balanced_acc'])}"
                    if versus
                    else "—",
                    Path(versus["peer_dir"]).name if versus else "—",
                    f"{_duration(statistics.fmean(walls))} ({_duration(min(walls))}-"
                    f"{_duration(max(walls))})"
                    if walls
                    else "—",
                    f"{len(pooled['folds_pooled'])}/{config['folds']}",
                    same or "—",
                ],
            }  # fmt: skip
        )
    level = runs[0]["summary"]["pooled"]["bootstrap"]["level"] if runs else 0.95
    return {"rows": rows, "level": level}


def table(result: dict[str, Any], markdown: bool = False) -> str:
    cells = [row["cells"] for row in result["rows"]]
    return (markdown_table if markdown else plain_table)(HEADER, cells)


def run_real_cv(settings: dict[str, Any], overrides: list[str], out_dir: Path) -> dict[str, Any]:
    """Compare `settings["cv_dirs"]`, or run the arms first; print the table."""
    cv_dirs = [Path(d) for d in settings.get("cv_dirs") or []]
    if not cv_dirs:
        cv_dirs = run_arms(settings, overrides, out_dir)
    result = compare(cv_dirs)
    level = int(round(float(result["level"]) * 100))
    print(f"\n[bench] pooled out-of-fold, {level}% bootstrap intervals over photos:")
    print(table(result), flush=True)
    return result

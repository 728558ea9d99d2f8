"""The real-data benchmark: the default real recipe vs a ResNet-18 peer, same split, same budget.

For each seed: `python -m anomaly_vit.train data=manifest data.manifest=PATH seed=S` (the real
recipe as a user runs it, timed end to end), then the peer (`bench.peer`) on the same
datamodule config and seed, hence the same item split and letterboxed images, with at most the
ViT's wall time. Test defect-vs-good AUROC and balanced accuracy (threshold from validation),
mean ± std over seeds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hydra

from anomaly_vit.bench.peer import PeerSettings, train_peer
from anomaly_vit.compose import compose
from anomaly_vit.errors import MissingFileError

METRICS = ("test/auroc", "test/balanced_acc")


def _train_vit(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "anomaly_vit.train", *overrides, f"hydra.run.dir={run_dir}"]
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"real recipe failed ({run_dir}): {done.stderr[-2000:]}")
    test = json.loads((run_dir / "summary.json").read_text())["test"]
    return {k: float(test[k]) for k in METRICS} | {"wall_s": wall}


def _train_peer(overrides: list[str], out_dir: Path, peer: PeerSettings, seed: int) -> dict:
    cfg = compose("train", overrides, output_dir=out_dir)
    datamodule = hydra.utils.instantiate(cfg.data, output_dir=str(out_dir))
    datamodule.prepare()
    datamodule.setup()
    return train_peer(datamodule, peer, seed)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run_real_data(settings: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Both models on every seed; per-seed results and mean/std per model and metric."""
    manifest = settings["manifest"]
    if not manifest or not Path(manifest).is_file():
        raise MissingFileError(
            f"real_data.manifest={manifest!r} is not a file: give the manifest CSV of a real "
            "defect set, e.g. real_data.manifest=../shared/datasets/kolektorsdd/manifest.csv"
        )
    base = ["data=manifest", f"data.manifest={Path(manifest).resolve()}", "data.progress=false"]
    base += ["trainer.enable_progress_bar=false", "callbacks.progress=null"]
    base += list(settings.get("train_overrides") or [])
    per_seed: dict[str, list[dict[str, Any]]] = {"vit": [], "peer": []}
    for seed in settings["seeds"]:
        overrides = [*base, f"seed={seed}"]
        vit = _train_vit(overrides, out_dir / f"vit_seed{seed}")
        peer_settings = PeerSettings(**dict(settings["peer"]))
        if settings.get("equal_time", True):
            peer_settings.time_budget_s = vit["wall_s"]
        peer = _train_peer(overrides, out_dir / f"peer_seed{seed}", peer_settings, seed)
        per_seed["vit"].append(vit | {"seed": seed})
        per_seed["peer"].append(peer | {"seed": seed})
        print(f"[bench] real data seed {seed}: vit {vit} | peer {peer}", flush=True)
    summary = {
        model: {key: mean_std([run[key] for run in runs]) for key in (*METRICS, "wall_s")}
        for model, runs in per_seed.items()
    }
    return {"per_seed": per_seed, "summary": summary, "manifest": str(manifest)}

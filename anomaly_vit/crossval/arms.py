"""The arms of cross-validation: what trains on a fold and scores its held-out photos.

- `vit`: the training run exactly as `python -m anomaly_vit.train` makes it (build the run, fit,
  test the best checkpoint, summary.json with the map scores) in the fold's run dir, then the
  tested weights score every test photo (the model's own defect score).
- `peer`: the ResNet-18 of `anomaly_vit.bench.peer` on the same fold's images (letterboxed to
  `cv.peer.img_size`), best validation epoch, threshold chosen on validation.

Both use a CUDA GPU when there is one (`trainer.accelerator: auto`, `cv.device: auto`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from anomaly_vit.bench.peer import (
    FALLBACK_THRESHOLD,
    PeerSettings,
    can_threshold,
    fit_peer,
    peer_scores,
    resolve_device,
)
from anomaly_vit.build import build_datamodule
from anomaly_vit.data.records import Record
from anomaly_vit.rundir import METRICS_CSV, read_metrics_csv

# the score a fold's photos are thresholded at when its validation part has no defect (what
# ViTClassifier keeps then: its initial defect_threshold; the peer does the same)
FALLBACK = (
    f"fallback {FALLBACK_THRESHOLD}: the initial defect threshold, which ViTClassifier keeps "
    "(and the peer takes) when validation has no defect: a good/defect head's argmax"
)


class Arm(StrEnum):
    VIT = "vit"
    PEER = "peer"


@dataclass
class FoldOutcome:
    """A fold's held-out photos, their defect scores and the threshold they are cut at."""

    records: list[Record]
    labels: list[str]  # class of each photo (as the data's task names it)
    is_defect: np.ndarray
    scores: np.ndarray
    threshold: float
    threshold_chosen: bool
    best_epoch: int | None
    epochs_run: int | None
    run_info: dict[str, Any] = field(default_factory=dict)


def _test_photos(datamodule) -> tuple[list[Record], list[str], np.ndarray]:
    dataset = datamodule.datasets["test"]
    good = datamodule.classes.index(datamodule.good_class)
    labels = [datamodule.classes[i] for i in dataset.labels.tolist()]
    return list(datamodule.records_of_split["test"]), labels, (dataset.labels != good).numpy()


def _val_chooses(datamodule) -> bool:
    good = datamodule.classes.index(datamodule.good_class)
    return can_threshold((datamodule.datasets["val"].labels != good).long())


def vit_scores(model, images_nchw: torch.Tensor, batch_size: int, device: str | None) -> np.ndarray:
    """The model's own defect score (`defect_score`: head, tokens or both) of each image."""
    model.to(resolve_device(device)).eval()
    run_on = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for first in range(0, len(images_nchw), batch_size):
            logits, tokens = model.forward_with_tokens(
                images_nchw[first : first + batch_size].to(run_on)
            )
            out.append(model.defect_score(logits, tokens).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def best_epoch(run_dir: Path, best_score: dict[str, float] | None) -> int | None:
    """The first global epoch of metrics.csv whose monitored metric equals the best score."""
    if not best_score:
        return None
    ((monitor, value),) = best_score.items()
    for row in read_metrics_csv(run_dir / METRICS_CSV):
        if math.isclose(row.get(monitor, math.nan), value, rel_tol=1e-6, abs_tol=1e-9):
            return int(row["epoch"])
    return None


def run_vit(cfg: DictConfig, settings: DictConfig) -> FoldOutcome:
    """Train, test and summarise the fold like `anomaly_vit.train`; score its test photos."""
    from anomaly_vit.cli.train import fit_and_test

    run, results = fit_and_test(cfg)
    model, datamodule = run["model"], run["datamodule"]
    records, labels, is_defect = _test_photos(datamodule)
    scores = vit_scores(
        model,
        datamodule.datasets["test"].images_nchw,
        int(settings.score_batch_size),
        settings.device,
    )
    rows = read_metrics_csv(Path(cfg.paths.output_dir) / METRICS_CSV)
    return FoldOutcome(
        records=records,
        labels=labels,
        is_defect=is_defect,
        scores=scores,
        threshold=float(model.defect_threshold),
        threshold_chosen=_val_chooses(datamodule),
        best_epoch=best_epoch(Path(cfg.paths.output_dir), results.get("best_score")),
        epochs_run=int(rows[-1]["epoch"]) if rows else None,
        run_info={
            "test": {k: v for k, v in results.get("test", {}).items() if isinstance(v, float)}
        },  # fmt: skip
    )


def peer_data_config(cfg: DictConfig, img_size: int | None) -> DictConfig:
    """The fold's data config for the peer: the same sources and split, letterboxed (or as
    `data.resize` says) to `img_size` x `img_size` (null: the ViT's input size)."""
    data = cfg.data.copy()
    if img_size:
        with open_dict(data):
            data.img_size = [int(img_size), int(img_size)]
    return data


def run_peer(cfg: DictConfig, settings: DictConfig) -> FoldOutcome:
    """Fit the ResNet-18 peer on the fold's train part, pick its threshold on validation,
    score its test photos."""
    peer = dict(settings.peer)
    img_size = peer.pop("img_size", None)
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    datamodule = build_datamodule(peer_data_config(cfg, img_size), output_dir, cfg.split_csv)
    datamodule.setup()
    decode_s = time.perf_counter() - started
    fit = fit_peer(datamodule, PeerSettings(**peer), int(cfg.seed), settings.device)
    records, labels, is_defect = _test_photos(datamodule)
    scores = peer_scores(fit.model, datamodule.datasets["test"].images_nchw).numpy()
    return FoldOutcome(
        records=records,
        labels=labels,
        is_defect=is_defect,
        scores=scores,
        threshold=fit.threshold,
        threshold_chosen=fit.threshold_chosen,
        best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run,
        run_info={
            "input_hw": list(datamodule.input_hw),
            "decode_s": decode_s,
            "fit_s": fit.wall_s,
            "device": str(next(fit.model.parameters()).device),
        },  # fmt: skip
    )


ARMS = {Arm.VIT: run_vit, Arm.PEER: run_peer}

"""The peer a user would try instead: a torchvision ResNet-18 from scratch, good vs defect.

It trains on the very images, split and letterboxing of a `MixedDataModule` (so the comparison
with the ViT recipe is on the same items), with class-balanced draws, flips, AdamW and a
one-cycle schedule, keeps the best validation epoch (AUROC, then balanced accuracy), picks the
defect threshold on validation (Youden's J, as the project does) and reports the test split.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_auroc, binary_roc


@dataclass
class PeerSettings:
    """The peer's recipe (conf/bench.yaml `real_data.peer`)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    time_budget_s: float | None = None  # stop after the epoch that crosses it


def _binary(dataset, good_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    return dataset.images_nchw, (dataset.labels != good_index).long()


def _scores(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = [
            model(_normalise(images[i : i + batch_size])).softmax(1)[:, 1]
            for i in range(0, len(images), batch_size)
        ]
    model.train()
    return torch.cat(out)


def _normalise(images_nchw: torch.Tensor) -> torch.Tensor:
    return (images_nchw.float() / 255 - 0.45) / 0.25


def youden_threshold(scores: torch.Tensor, is_defect: torch.Tensor) -> float:
    fpr, tpr, thresholds = binary_roc(scores, is_defect)
    return float(thresholds[torch.argmax(tpr - fpr)].clamp(0.0, 1.0))


def balanced_accuracy(scores: torch.Tensor, is_defect: torch.Tensor, threshold: float) -> float:
    predicted = scores >= threshold
    truth = is_defect.bool()
    recall_defect = (predicted & truth).sum() / truth.sum().clamp(min=1)
    recall_good = (~predicted & ~truth).sum() / (~truth).sum().clamp(min=1)
    return float((recall_defect + recall_good) / 2)


def train_peer(datamodule, settings: PeerSettings, seed: int) -> dict[str, float]:
    """Fit the peer on `datamodule`'s train split (after `setup()`); test metrics + wall time."""
    import torchvision

    torch.manual_seed(seed)
    good = datamodule.classes.index(datamodule.good_class)
    x_train, y_train = _binary(datamodule.datasets["train"], good)
    x_val, y_val = _binary(datamodule.datasets["val"], good)
    x_test, y_test = _binary(datamodule.datasets["test"], good)
    model = torchvision.models.resnet18(num_classes=2)
    n = len(y_train)
    steps = math.ceil(n / settings.batch_size) * settings.epochs
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=steps)
    n_defect = int(y_train.sum())
    draw_weights = torch.where(y_train == 1, 0.5 / max(n_defect, 1), 0.5 / max(n - n_defect, 1))
    start, best = time.perf_counter(), (-1.0, -1.0)
    best_state, best_epoch = None, 0
    for epoch in range(settings.epochs):
        order = torch.multinomial(draw_weights, n, replacement=True)
        for i in range(0, n, settings.batch_size):
            rows = order[i : i + settings.batch_size]
            images = x_train[rows].float()
            flip_w = torch.rand(len(rows)) < 0.5
            flip_h = torch.rand(len(rows)) < 0.5
            images = torch.where(flip_w.view(-1, 1, 1, 1), images.flip(-1), images)
            images = torch.where(flip_h.view(-1, 1, 1, 1), images.flip(-2), images)
            loss = F.cross_entropy(
                model(_normalise(images)), y_train[rows], label_smoothing=settings.label_smoothing
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        scores = _scores(model, x_val)
        auroc = float(binary_auroc(scores, y_val))
        key = (auroc, balanced_accuracy(scores, y_val, youden_threshold(scores, y_val)))
        if key >= best:
            best, best_epoch = key, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if settings.time_budget_s and time.perf_counter() - start > settings.time_budget_s:
            break
    model.load_state_dict(best_state)
    threshold = youden_threshold(_scores(model, x_val), y_val)
    scores = _scores(model, x_test)
    return {
        "test/auroc": float(binary_auroc(scores, y_test)),
        "test/balanced_acc": balanced_accuracy(scores, y_test, threshold),
        "best_epoch": best_epoch,
        "epochs_run": epoch + 1,
        "wall_s": time.perf_counter() - start,
    }

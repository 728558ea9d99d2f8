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


def resolve_device(name: str | None) -> torch.device:
    """`auto` (or null): the CUDA GPU when there is one, else the CPU; else the named device."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def peer_scores(
    model: torch.nn.Module, images_nchw: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """P(defect) of each uint8 image (on the CPU), batches on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        out = [
            model(_normalise(images_nchw[i : i + batch_size].to(device))).float().softmax(1)[:, 1]
            for i in range(0, len(images_nchw), batch_size)
        ]
    model.train()
    return torch.cat(out).cpu() if out else torch.zeros(0)


def _normalise(images_nchw: torch.Tensor) -> torch.Tensor:
    return (images_nchw.float() / 255 - 0.45) / 0.25


def can_threshold(is_defect: torch.Tensor) -> bool:
    """Validation can choose a threshold only when it holds both good and defective images."""
    return 0 < int(is_defect.sum()) < len(is_defect)


def youden_threshold(scores: torch.Tensor, is_defect: torch.Tensor) -> float:
    fpr, tpr, thresholds = binary_roc(scores, is_defect)
    return float(thresholds[torch.argmax(tpr - fpr)].clamp(0.0, 1.0))


def balanced_accuracy(scores: torch.Tensor, is_defect: torch.Tensor, threshold: float) -> float:
    predicted = scores >= threshold
    truth = is_defect.bool()
    recall_defect = (predicted & truth).sum() / truth.sum().clamp(min=1)
    recall_good = (~predicted & ~truth).sum() / (~truth).sum().clamp(min=1)
    return float((recall_defect + recall_good) / 2)


@dataclass
class PeerFit:
    """A fitted peer: the best validation epoch's weights and the threshold chosen on it."""

    model: torch.nn.Module
    threshold: float  # FALLBACK_THRESHOLD when validation cannot choose one
    threshold_chosen: bool  # chosen on validation (Youden's J), or the fallback
    best_epoch: int
    epochs_run: int
    wall_s: float


# what the ViT keeps when validation cannot choose (its initial `defect_threshold`): the
# argmax of a good/defect head
FALLBACK_THRESHOLD = 0.5


def fit_peer(datamodule, settings: PeerSettings, seed: int, device: str | None = "auto") -> PeerFit:
    """Fit the peer on `datamodule`'s train split (after `setup()`), keeping its best
    validation epoch (AUROC, then balanced accuracy); `device` auto: a CUDA GPU when present."""
    import torchvision

    torch.manual_seed(seed)
    run_on = resolve_device(device)
    good = datamodule.classes.index(datamodule.good_class)
    x_train, y_train = _binary(datamodule.datasets["train"], good)
    x_val, y_val = _binary(datamodule.datasets["val"], good)
    model = torchvision.models.resnet18(num_classes=2).to(run_on)
    n = len(y_train)
    steps = math.ceil(n / settings.batch_size) * settings.epochs
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=steps)
    n_defect = int(y_train.sum())
    draw_weights = torch.where(y_train == 1, 0.5 / max(n_defect, 1), 0.5 / max(n - n_defect, 1))
    chooses = can_threshold(y_val)
    start, best = time.perf_counter(), (-1.0, -1.0)
    best_state, best_epoch = None, 0
    for epoch in range(settings.epochs):
        order = torch.multinomial(draw_weights, n, replacement=True)
        for i in range(0, n, settings.batch_size):
            rows = order[i : i + settings.batch_size]
            images = x_train[rows].to(run_on).float()
            flip_w = (torch.rand(len(rows)) < 0.5).to(run_on)
            flip_h = (torch.rand(len(rows)) < 0.5).to(run_on)
            images = torch.where(flip_w.view(-1, 1, 1, 1), images.flip(-1), images)
            images = torch.where(flip_h.view(-1, 1, 1, 1), images.flip(-2), images)
            loss = F.cross_entropy(
                model(_normalise(images)),
                y_train[rows].to(run_on),
                label_smoothing=settings.label_smoothing,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        key = (float(epoch), 0.0)  # without both classes in validation: the last epoch
        if chooses:
            scores = peer_scores(model, x_val)
            threshold = youden_threshold(scores, y_val)
            key = (float(binary_auroc(scores, y_val)), balanced_accuracy(scores, y_val, threshold))
        if key >= best:
            best, best_epoch = key, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if settings.time_budget_s and time.perf_counter() - start > settings.time_budget_s:
            break
    model.load_state_dict(best_state)
    threshold = (
        youden_threshold(peer_scores(model, x_val), y_val) if chooses else FALLBACK_THRESHOLD
    )
    return PeerFit(model, threshold, chooses, best_epoch, epoch + 1, time.perf_counter() - start)


def train_peer(
    datamodule, settings: PeerSettings, seed: int, device: str | None = "auto"
) -> dict[str, float]:
    """Fit the peer on `datamodule`'s train split (after `setup()`); test metrics + wall time."""
    fit = fit_peer(datamodule, settings, seed, device)
    good = datamodule.classes.index(datamodule.good_class)
    x_test, y_test = _binary(datamodule.datasets["test"], good)
    scores = peer_scores(fit.model, x_test)
    return {
        "test/auroc": float(binary_auroc(scores, y_test)),
        "test/balanced_acc": balanced_accuracy(scores, y_test, fit.threshold),
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "wall_s": fit.wall_s,
    }

"""`SelfSupervisedViT`: the classifier's timm ViT trained by a self-supervised objective.

The network is built exactly as `ViTClassifier` builds it (`create_vit` from `model.net`, a head
for the data's classes), so its `net.*` keys are the fine-tune's: `finetune_from` loads the
encoder, drops the objective's decoder (`objective.*`) and re-initialises the head, which
pretraining never trains. `forward` returns that untrained head's logits only so the attention
rollout (class-agnostic) can be dumped during pretraining.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric

from anomaly_vit.errors import ConfigError, DivergenceError
from anomaly_vit.model.factory import create_vit
from anomaly_vit.model.module import IMAGENET_MEAN, IMAGENET_STD
from anomaly_vit.model.optim import DEFAULT_OPTIMIZER, build_optimizer, check_factory
from anomaly_vit.rundir import last_checkpoint_note
from anomaly_vit.ssl.objectives import build_objective, random_patch_mask

ENCODER_PREFIX = "net."  # what a fine-tune loads
HEAD_PREFIX = "net.head."  # never trained here: re-initialised by a fine-tune
OBJECTIVE_PREFIX = "objective."  # the decoder: dropped by a fine-tune
VAL_MASK_SEED = 12345  # validation masks are the same every epoch: val/loss is comparable


class SelfSupervisedViT(L.LightningModule):
    """Train `net` (the classifier's ViT) with `objective` (`ssl.objectives`), labels unused."""

    def __init__(
        self,
        classes: list[str],
        net: dict[str, Any],
        objective: dict[str, Any] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        good_class: str = "good",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        epoch_offset: int = 0,
        name: str = "vit",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        check_factory(optimizer, "pretrain.optimizer")
        check_factory(scheduler, "pretrain.scheduler")
        self.optimizer_factory = optimizer or DEFAULT_OPTIMIZER
        self.scheduler_factory = scheduler
        self.classes = list(classes)
        self.good_index = self.classes.index(good_class) if good_class in self.classes else 0
        self.net = create_vit(num_classes=len(self.classes), **net)
        options = dict(objective or {"kind": "mae"})
        self.objective_kind = str(options.get("kind", "mae"))
        self.objective = build_objective(self.net, **options)
        self.mask_ratio = float(self.objective.mask_ratio)
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(
                f"pretrain.objective.mask_ratio must be in (0, 1), got {self.mask_ratio}."
            )
        self.epoch_offset = int(epoch_offset)
        self.register_buffer(
            "pixel_mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False
        )
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.run_config: dict[str, Any] = {}
        self.lineage: list[dict[str, Any]] = []
        self.epoch_metrics: dict[str, float] = {}

    @property
    def global_epoch(self) -> int:
        """1-based epoch number across a lineage (a fine-tune continues from the last one)."""
        return self.epoch_offset + self.current_epoch + 1

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the untrained head (for the attention rollout; not a prediction)."""
        return self.net(self.normalize(images))

    def ssl_loss(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The objective on a batch of [0, 255] images, with fresh random masks."""
        num_patches = self.net.patch_embed.num_patches
        mask = random_patch_mask(len(images), num_patches, self.mask_ratio, generator)
        return self.objective(self.net, self.normalize(images), mask.to(images.device))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.ssl_loss(batch["image"])
        if not torch.isfinite(loss):
            raise DivergenceError(
                f"non-finite pretraining loss {loss.item()} at global epoch {self.global_epoch}: "
                "lower pretrain.optimizer.lr. "
                f"{last_checkpoint_note(self.run_config.get('run_dir'))}"
            )
        self.log(
            "global_epoch",
            float(self.global_epoch),
            on_step=False,
            on_epoch=True,
            logger=False,
            reduce_fx="max",
        )
        self.train_loss.update(loss.detach(), weight=len(batch["image"]))
        return loss

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()

    def train_epoch_metrics(self) -> dict[str, float]:
        """What `EpochMetricsWriter` writes for the epoch (besides the validation's)."""
        return {
            "train/loss": float(self.train_loss.compute()),
            "lr": float(self.optimizers().param_groups[0]["lr"]) if self._trainer else float("nan"),
        }

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """The objective on held-out validation images (never trained on), fixed masks."""
        generator = torch.Generator().manual_seed(VAL_MASK_SEED + batch_idx)
        self.val_loss.update(self.ssl_loss(batch["image"], generator), weight=len(batch["image"]))

    def on_validation_epoch_end(self) -> None:
        metrics = {"val/loss": float(self.val_loss.compute())} if self.val_loss.update_count else {}
        self.val_loss.reset()
        if metrics:
            self.log_dict(metrics, logger=False)
        if not self.trainer.sanity_checking:
            self.epoch_metrics = metrics

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.optimizer_factory, self.net, extra=self.objective)
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, total_steps // max(1, self.trainer.max_epochs or 1))
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        schedule = self.scheduler_factory(
            optimizer=optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["anomaly_vit"] = {
            "config": self.run_config,
            "lineage": self.lineage,
            "global_epoch": self.global_epoch,
            "epoch_offset": self.epoch_offset,
            "classes": self.classes,
            # what `finetune_from` reads: a self-supervised encoder, not a trained classifier
            "pretrain": {
                "objective": self.objective_kind,
                "encoder_prefix": ENCODER_PREFIX,
                "dropped_prefixes": [OBJECTIVE_PREFIX, HEAD_PREFIX],
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A resumed pretraining keeps its lineage and epoch numbering."""
        info = checkpoint.get("anomaly_vit", {})
        self.run_config = self.run_config or info.get("config", {})
        self.lineage = info.get("lineage", [])
        self.epoch_offset = int(info.get("epoch_offset", self.epoch_offset))
        self.hparams.epoch_offset = self.epoch_offset

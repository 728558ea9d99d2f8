"""`ViTClassifier`: a timm ViT as a LightningModule, with defect metrics and a stored threshold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import CatMetric, MeanMetric, MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)

from anomaly_vit.checkpointing.load import check_classifier_checkpoint, load_checkpoint
from anomaly_vit.errors import CheckpointError, ConfigError, DivergenceError, enum_value
from anomaly_vit.model.factory import create_vit
from anomaly_vit.model.mask_guidance import (
    Decision,
    MaskSources,
    TokenDefectHead,
    pool_mask_to_grid,
    token_mask_loss,
)
from anomaly_vit.model.optim import DEFAULT_OPTIMIZER, build_optimizer, check_factory
from anomaly_vit.model.thresholds import choose_threshold
from anomaly_vit.model.token_geometry import token_geometry
from anomaly_vit.rundir import last_checkpoint_note
from anomaly_vit.stored_config import checked_model_hparams

TRAINING_HPARAMS = ("optimizer", "scheduler")  # never rebuilt from a checkpoint
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _class_metrics(num_classes: int) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "balanced_acc": MulticlassRecall(num_classes, average="macro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        }
    )


class ViTClassifier(L.LightningModule):
    """Classify images into `classes` (one of them the good class) with a timm ViT.

    Inputs are uint8 or float images in [0, 255] (NCHW); normalisation happens here, so the data
    pipeline stays uint8 and cheap. The defect score is 1 - p(good); the threshold on it that
    maximises balanced accuracy on validation (policy "youden", `model.thresholds`) is a buffer,
    so it travels in the checkpoint; the other policies are chosen at the end of training
    (`model.calibration`).

    `optimizer` and `scheduler` are partial targets (`model.optim`); they are training settings,
    kept out of the checkpoint's hyper-parameters, so a checkpoint loads weights-only and never
    chooses what is built (`from_checkpoint`).
    """

    def __init__(
        self,
        classes: list[str],
        net: dict[str, Any],
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        class_weights: list[float] | None = None,
        good_class: str = "good",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        epoch_offset: int = 0,
        name: str = "vit",
        mask_loss: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        check_factory(optimizer, "model.optimizer")
        check_factory(scheduler, "model.scheduler")
        self.optimizer_factory = optimizer or DEFAULT_OPTIMIZER
        self.scheduler_factory = scheduler  # None: a constant learning rate
        self.classes = list(classes)
        if good_class not in self.classes:
            raise ConfigError(f"good_class={good_class!r} is not among the classes {self.classes}.")
        self.good_index = self.classes.index(good_class)
        self.net = create_vit(num_classes=len(self.classes), **net)
        guidance = {"weight": 0.0, "sources": "both", "decision": "head"} | dict(mask_loss or {})
        self.mask_loss_weight = float(guidance["weight"])
        if self.mask_loss_weight < 0:
            raise ConfigError(f"model.mask_loss.weight must be >= 0, got {self.mask_loss_weight}.")
        self.mask_sources = enum_value(MaskSources, guidance["sources"], "model.mask_loss.sources")
        self.decision = enum_value(Decision, guidance["decision"], "model.mask_loss.decision")
        if self.decision is not Decision.HEAD and self.mask_loss_weight == 0:
            raise ConfigError(
                f"model.mask_loss.decision={self.decision.value} reads token scores, which only "
                "the mask loss trains: set model.mask_loss.weight > 0 or decision=head."
            )
        # built only when used, so weight 0 draws no extra random numbers (today's run exactly)
        self.token_head = TokenDefectHead(self.net.embed_dim) if self.mask_loss_weight > 0 else None
        self.token_geometry = token_geometry(self.net.patch_embed)  # where masks pool to tokens
        self.epoch_offset = int(epoch_offset)
        self.register_buffer(
            "pixel_mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False
        )
        self.register_buffer("defect_threshold", torch.tensor(0.5))
        weights = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        if weights is not None and len(weights) != len(self.classes):
            raise ConfigError(
                f"model.class_weights has {len(weights)} entries for {len(self.classes)} classes."
            )
        self.register_buffer("class_weights", weights, persistent=False)
        n = len(self.classes)
        self.train_loss, self.train_acc = MeanMetric(), MulticlassAccuracy(n, average="micro")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_metrics = _class_metrics(n).clone(prefix="val/")
        self.test_metrics = _class_metrics(n).clone(prefix="test/")
        self.val_auroc, self.test_auroc = BinaryAUROC(), BinaryAUROC()
        self.val_confusion = MulticlassConfusionMatrix(n)
        self.test_confusion = MulticlassConfusionMatrix(n)
        self.val_scores, self.val_is_defect = CatMetric(), CatMetric()
        self.test_defect_hits = MeanMetric()
        self.run_config: dict[str, Any] = {}  # resolved config essentials, saved in checkpoints
        self.lineage: list[dict[str, Any]] = []  # parent runs this one continues from
        self.epoch_metrics: dict[str, float] = {}
        self.test_results: dict[str, float] = {}

    # ------------------------------------------------------------------------------ forward
    @property
    def global_epoch(self) -> int:
        """1-based epoch number across a lineage of runs (fine-tunes continue the count)."""
        return self.epoch_offset + self.current_epoch + 1

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(images))

    def forward_with_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class logits and, with the mask loss on, one defect logit per patch token (B, N)."""
        if self.token_head is None:
            return self(images), None
        features = self.net.forward_features(self.normalize(images))
        tokens = self.token_head(features[:, self.net.num_prefix_tokens :])
        return self.net.forward_head(features), tokens

    def defect_score(
        self, logits: torch.Tensor, token_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """P(defect) of each image as `model.mask_loss.decision` reads it."""
        head = 1.0 - logits.float().softmax(dim=-1)[:, self.good_index]
        if token_logits is None or self.decision is Decision.HEAD:
            return head
        tokens = token_logits.float().amax(dim=1).sigmoid()
        return tokens if self.decision is Decision.TOKENS else 0.5 * (head + tokens)

    def _mask_loss(
        self, batch: dict[str, torch.Tensor], token_logits: torch.Tensor
    ) -> torch.Tensor:
        if "mask" not in batch:
            raise ConfigError(
                "model.mask_loss.weight > 0 needs the training masks: set data.train_masks=true."
            )
        known = batch["mask_known"]
        if self.mask_sources is MaskSources.REAL:
            known = known & ~batch["synthetic"]
        elif self.mask_sources is MaskSources.SYNTHETIC:
            known = known & batch["synthetic"]
        targets = pool_mask_to_grid(
            batch["mask"], self.net.patch_embed.grid_size, self.token_geometry
        )
        return token_mask_loss(token_logits, targets, known)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits, labels, weight=self.class_weights, label_smoothing=self.hparams.label_smoothing
        )

    # ----------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, token_logits = self.forward_with_tokens(batch["image"])
        loss = self._loss(logits, batch["label"])
        if token_logits is not None:
            loss = loss + self.mask_loss_weight * self._mask_loss(batch, token_logits)
        if not torch.isfinite(loss):
            raise DivergenceError(
                f"non-finite training loss {loss.item()} at global epoch {self.global_epoch}, "
                f"batch {batch_idx}: lower model.optimizer.lr or check the input images. "
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
        self.train_loss.update(loss.detach(), weight=len(logits))
        self.train_acc.update(logits.detach(), batch["label"])
        return loss

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()
        self.train_acc.reset()

    def train_epoch_metrics(self) -> dict[str, float]:
        """Mean loss and accuracy of the epoch so far (synchronised across ranks)."""
        return {
            "train/loss": float(self.train_loss.compute()),
            "train/acc": float(self.train_acc.compute()),
            "lr": float(self.optimizers().param_groups[0]["lr"]) if self._trainer else float("nan"),
        }

    # --------------------------------------------------------------------------- evaluation
    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits, token_logits = self.forward_with_tokens(batch["image"])
        if not bool(torch.isfinite(logits).all()):
            raise DivergenceError(
                f"non-finite model outputs (NaN/inf) on {stage} images after global epoch "
                f"{self.global_epoch}: the weights diverged in its last training steps; lower "
                "model.optimizer.lr. "
                f"{last_checkpoint_note(self.run_config.get('run_dir'))}"
            )
        labels = batch["label"]
        is_defect = (labels != self.good_index).long()
        scores = self.defect_score(logits, token_logits)
        getattr(self, f"{stage}_loss").update(self._loss(logits, labels), weight=len(labels))
        predictions = self._predict(logits, scores)
        getattr(self, f"{stage}_metrics").update(predictions, labels)
        getattr(self, f"{stage}_auroc").update(scores, is_defect)
        getattr(self, f"{stage}_confusion").update(predictions, labels)
        if stage == "val":
            self.val_scores.update(scores)
            self.val_is_defect.update(is_defect)
        else:
            self.test_defect_hits.update(
                ((scores >= self.defect_threshold).long() == is_defect).float()
            )
        return logits

    @property
    def thresholds_scores(self) -> bool:
        """A good/defect model whose defect score reads token scores decides by its threshold
        (chosen on validation), not by the class head's argmax."""
        return len(self.classes) == 2 and self.decision is not Decision.HEAD

    def _predict(self, logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Class predictions: the head's argmax, or the thresholded defect score."""
        if not self.thresholds_scores:
            return logits
        defect_index = 1 - self.good_index
        return torch.where(scores >= self.defect_threshold, defect_index, self.good_index)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "val")

    def _metrics_at_threshold(self, scores: torch.Tensor, is_defect: torch.Tensor) -> dict:
        """val accuracy, balanced accuracy and F1 at this epoch's new threshold."""
        labels = torch.where(is_defect.bool(), 1 - self.good_index, self.good_index)
        predictions = self._predict(scores.new_zeros(0), scores)
        metrics = _class_metrics(2).clone(prefix="val/").to(scores.device)
        return {k: float(v) for k, v in metrics(predictions, labels).items()}

    def on_validation_epoch_end(self) -> None:
        metrics = self._compute_eval("val")
        scores, is_defect = self.val_scores.compute(), self.val_is_defect.compute()
        self.val_scores.reset()
        self.val_is_defect.reset()
        if (
            not self.trainer.sanity_checking
            and is_defect.numel()
            and 0 < is_defect.sum() < is_defect.numel()
        ):
            youden = choose_threshold(
                scores.float().cpu().numpy(), is_defect.bool().cpu().numpy(), "youden"
            )  # every policy is chosen in model.thresholds; this one steers training
            self.defect_threshold.fill_(min(max(youden, 0.0), 1.0))
            if self.thresholds_scores:
                metrics.update(self._metrics_at_threshold(scores, is_defect))
        metrics["val/defect_threshold"] = float(self.defect_threshold)
        self.log_dict(
            {k: v for k, v in metrics.items() if k != "val/confusion"},
            logger=False,
            sync_dist=False,
        )
        if not self.trainer.sanity_checking:
            self.epoch_metrics = metrics

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        metrics = self._compute_eval("test")
        metrics["test/defect_acc_at_threshold"] = float(self.test_defect_hits.compute())
        metrics["test/defect_threshold"] = float(self.defect_threshold)
        self.test_defect_hits.reset()
        self.log_dict({k: v for k, v in metrics.items() if k != "test/confusion"}, logger=False)
        self.test_results = metrics

    def _compute_eval(self, stage: str) -> dict[str, Any]:
        collection = getattr(self, f"{stage}_metrics")
        metrics: dict[str, Any] = {k: float(v) for k, v in collection.compute().items()}
        metrics[f"{stage}/loss"] = float(getattr(self, f"{stage}_loss").compute())
        auroc = getattr(self, f"{stage}_auroc")
        metrics[f"{stage}/auroc"] = float(auroc.compute()) if auroc.update_count else float("nan")
        confusion = getattr(self, f"{stage}_confusion")
        metrics[f"{stage}/confusion"] = confusion.compute().cpu().tolist()
        for metric in (collection, auroc, confusion, getattr(self, f"{stage}_loss")):
            metric.reset()
        return metrics

    # ---------------------------------------------------------------------------- optimiser
    def build_optimizer(self) -> torch.optim.Optimizer:
        """The configured optimizer on the network (and the mask loss's token head)."""
        return build_optimizer(self.optimizer_factory, self.net, extra=self.token_head)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.build_optimizer()
        # read before the constant case too: it sets up the training data (the order of draws)
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, total_steps // max(1, self.trainer.max_epochs or 1))
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        schedule = self.scheduler_factory(
            optimizer=optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ---------------------------------------------------------------------------- checkpoint
    @classmethod
    def from_checkpoint(
        cls,
        ckpt_path: str | Path,
        trust_pickle: bool = False,
        key: str = "ckpt_path",
        checkpoint: dict[str, Any] | None = None,
    ) -> ViTClassifier:
        """The model of a checkpoint of anomaly_vit.train, on the CPU, for eval and explain.

        Loads with `weights_only` unless `trust_pickle` (or takes the already loaded
        `checkpoint` of `ckpt_path`). Only the architecture comes from the checkpoint: the
        network is built without pretrained weights or weight files, and the training settings
        (optimizer, scheduler; old checkpoints stored them as dicts) are not read.
        """
        if checkpoint is None:
            checkpoint = load_checkpoint(ckpt_path, key=key, trust_pickle=trust_pickle)
        check_classifier_checkpoint(checkpoint, ckpt_path, key)
        hparams = checkpoint.get("hyper_parameters")
        if not hparams or "net" not in hparams or "classes" not in hparams:
            raise CheckpointError(
                f"{key}={ckpt_path} carries no model hyper-parameters; it was not written by "
                "anomaly_vit.train."
            )
        hparams = checked_model_hparams(hparams, f"{key}={ckpt_path}")  # data, not code
        architecture = {k: v for k, v in hparams.items() if k not in TRAINING_HPARAMS}
        net = {**hparams["net"], "pretrained": False, "weights_path": None}
        model = cls(**{**architecture, "net": net})
        model.load_state_dict(checkpoint["state_dict"])
        model.on_load_checkpoint(checkpoint)
        return model

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["anomaly_vit"] = {
            "config": self.run_config,
            "lineage": self.lineage,
            "global_epoch": self.global_epoch,
            "epoch_offset": self.epoch_offset,
            "classes": self.classes,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the lineage and epoch numbering (a resumed fine-tune keeps counting from its
        parent); keep this run's config essentials if it has them (a resume may change max_epochs)."""
        info = checkpoint.get("anomaly_vit", {})
        self.run_config = self.run_config or info.get("config", {})
        self.lineage = info.get("lineage", [])
        offset = info.get(
            "epoch_offset", checkpoint.get("hyper_parameters", {}).get("epoch_offset")
        )
        if offset is not None:
            self.epoch_offset = int(offset)
            self.hparams.epoch_offset = int(offset)

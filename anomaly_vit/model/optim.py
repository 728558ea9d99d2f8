"""Optimizer and learning-rate schedule of a `ViTClassifier`, built from `_partial_` targets.

`model.optimizer` is a partial optimizer class (`{_target_: torch.optim.AdamW, _partial_: true,
lr: ..., weight_decay: ...}`); it is called on timm's parameter groups: norms, biases and the
ViT's `no_weight_decay()` names (pos_embed, cls_token) without weight decay, the rest with the
configured one (exactly what `timm.optim.create_optimizer_v2` builds). `model.scheduler` is a
partial that takes the optimizer and the run's step counts (`warmup_cosine_schedule`), or null
for a constant learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from timm.optim import param_groups_weight_decay
from torch import nn

from anomaly_vit.errors import ConfigError

DEFAULT_OPTIMIZER = partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier: linear warm-up from ~0 to 1, then cosine decay to `min_lr_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: `warmup_epochs` of linear warm-up, then cosine to `min_lr_ratio`."""
    warmup_steps = max(1, int(warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: warmup_cosine(step, warmup_steps, total_steps, float(min_lr_ratio)),
    )


def check_factory(factory: Any, key: str) -> None:
    """A one-line error unless `factory` is a partial target (null passes)."""
    if factory is not None and not callable(factory):
        raise ConfigError(
            f"{key} must be a _partial_ target, e.g. {{_target_: torch.optim.AdamW, _partial_: "
            f"true, lr: 1.0e-3}} (see conf/model/vit_tiny64.yaml); got {factory!r}."
        )


def build_optimizer(
    factory: Callable[..., torch.optim.Optimizer], net: nn.Module, extra: nn.Module | None = None
) -> torch.optim.Optimizer:
    """`factory` on timm's weight-decay groups of `net`; `extra` (e.g. the mask loss's token
    head) is added as one more group with the optimizer's defaults (no weight decay)."""
    weight_decay = float(getattr(factory, "keywords", {}).get("weight_decay", 0.0))
    no_weight_decay = getattr(net, "no_weight_decay", lambda: set())()
    groups = param_groups_weight_decay(
        net, weight_decay=weight_decay, no_weight_decay_list=no_weight_decay
    )
    optimizer = factory(params=groups, weight_decay=0.0)  # the groups carry their own decay
    if extra is not None:
        optimizer.add_param_group({"params": list(extra.parameters())})
    return optimizer

"""Optimizer and schedule from `_partial_` targets (timm's weight-decay groups, as before), and
checkpoints that keep them out: new ones load weights-only, old ones (dict form) still load."""

from __future__ import annotations

import math
from functools import partial

import hydra
import pytest
import torch
from timm.optim import create_optimizer_v2

from anomaly_vit.model.module import ViTClassifier
from anomaly_vit.model.optim import warmup_cosine_schedule
from tests.conftest import compose_config
from tests.helpers import TINY_NET

CLASSES = ["good", "scratch"]
NET = TINY_NET


def _groups(optimizer: torch.optim.Optimizer) -> list[tuple[list[int], dict]]:
    return [
        ([id(p) for p in group["params"]], {k: v for k, v in group.items() if k != "params"})
        for group in optimizer.param_groups
    ]


@pytest.mark.parametrize("mask_loss", [0.0, 1.0])
def test_param_groups_are_timms_with_the_token_head_appended(mask_loss):
    model = ViTClassifier(
        CLASSES,
        NET,
        optimizer=partial(torch.optim.AdamW, lr=3e-4, weight_decay=0.05),
        mask_loss={"weight": mask_loss},
    )
    ours = model.build_optimizer()
    reference = create_optimizer_v2(model.net, opt="adamw", lr=3e-4, weight_decay=0.05)
    if model.token_head is not None:
        reference.add_param_group({"params": list(model.token_head.parameters())})
    assert type(ours) is torch.optim.AdamW
    assert _groups(ours) == _groups(reference)
    no_decay = {id(p) for p in ours.param_groups[0]["params"]}
    assert ours.param_groups[0]["weight_decay"] == 0.0
    assert ours.param_groups[1]["weight_decay"] == 0.05
    assert id(model.net.pos_embed) in no_decay and id(model.net.blocks[0].norm1.bias) in no_decay
    assert id(model.net.blocks[0].attn.qkv.weight) not in no_decay
    assert len(ours.param_groups) == 2 + (mask_loss > 0)


def test_default_config_builds_partials_and_the_warmup_cosine_schedule(tmp_path):
    cfg = compose_config("train", [], tmp_path)
    model = hydra.utils.instantiate(cfg.model, classes=CLASSES, _convert_="all")
    assert model.optimizer_factory.func is torch.optim.AdamW
    assert model.optimizer_factory.keywords == {"lr": 1e-3, "weight_decay": 0.05}
    optimizer = model.build_optimizer()
    schedule = model.scheduler_factory(optimizer=optimizer, total_steps=100, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] == pytest.approx(1e-3 / 30)  # warm-up: 3 epochs of 10 steps
    assert lrs[29] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 69 / 70))))
    assert "optimizer" not in model.hparams and "scheduler" not in model.hparams


def test_warmup_cosine_schedule_without_warmup_starts_at_the_full_rate():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    warmup_cosine_schedule(optimizer, total_steps=10, steps_per_epoch=5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


def test_an_old_style_dict_optimizer_is_one_clear_line():
    with pytest.raises(ValueError, match=r"model\.optimizer must be a _partial_ target"):
        ViTClassifier(CLASSES, NET, optimizer={"opt": "adamw", "lr": 1e-3})


def _save(model: ViTClassifier, path, **hparams_changes) -> None:
    """A checkpoint as Lightning writes one (hyper-parameters as a plain dict)."""
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    checkpoint["hyper_parameters"].update(hparams_changes)
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)


def test_new_and_old_checkpoints_load_weights_only_and_predict_the_same(tmp_path):
    torch.manual_seed(0)
    model = ViTClassifier(CLASSES, NET, optimizer=partial(torch.optim.Adam, lr=1e-3)).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    _save(model, tmp_path / "new.ckpt")
    old = {"optimizer": {"opt": "adamw", "lr": 1e-3}, "scheduler": {"name": "cosine"}}
    _save(model, tmp_path / "old.ckpt", **old)
    assert (
        "optimizer" not in torch.load(tmp_path / "new.ckpt", weights_only=True)["hyper_parameters"]
    )
    for name in ("new.ckpt", "old.ckpt"):
        loaded = ViTClassifier.from_checkpoint(tmp_path / name).eval()
        assert loaded.optimizer_factory.func is torch.optim.AdamW  # never taken from a checkpoint
        assert loaded.scheduler_factory is None
        with torch.no_grad():
            assert torch.equal(loaded(images), model(images)), name

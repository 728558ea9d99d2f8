"""The classifier learns (fast, not `slow`): the default model config, shrunk to one block, fitted
by a Lightning Trainer through its own `training_step` and `configure_optimizers` (optimizer,
warm-up + cosine schedule) for a few dozen steps on a separable set (a bright square or not),
classifies held-out images of that set far above chance. A detached loss, a zero learning rate
or a schedule that never lets it rise leaves it at chance and fails here; the slow end-to-end
version with its controls (shuffled labels, lr ~0) is tests/e2e/test_learns.py."""

from __future__ import annotations

import hydra
import lightning as L
import torch
from torch.utils.data import DataLoader

from tests.helpers import compose_config

SIDE = 32
SPOT = 8
CLASSES = ["good", "spot"]
NET = [f"model.net.img_size={SIDE}", "model.net.embed_dim=32", "model.net.depth=1",
       "model.net.num_heads=2", "model.net.drop_path_rate=0.0"]  # fmt: skip
EPOCHS = 6  # 4 batches of 16 each: 24 optimizer steps, the first 4 warming up


def separable_set(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """`n` noisy grey uint8 images, half with one bright SPOT x SPOT square anywhere (label 1)."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        image = (100 + 20 * torch.randn(3, SIDE, SIDE, generator=generator)).clamp(0, 255)
        label = i % 2
        if label:
            top, left = torch.randint(0, SIDE - SPOT, (2,), generator=generator).tolist()
            image[:, top : top + SPOT, left : left + SPOT] = 240
        samples.append({"image": image.to(torch.uint8), "label": torch.tensor(label)})
    return samples


def _accuracy(model: L.LightningModule, samples: list[dict[str, torch.Tensor]]) -> float:
    images = torch.stack([s["image"] for s in samples])
    labels = torch.stack([s["label"] for s in samples])
    model.eval()
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


def test_the_classifier_learns_a_separable_set_in_a_few_steps(tmp_path) -> None:
    cfg = compose_config("train", ["model.scheduler.warmup_epochs=1", *NET], tmp_path)
    L.seed_everything(0, verbose=False)
    model = hydra.utils.instantiate(cfg.model, classes=CLASSES, _convert_="all")
    train, held_out = separable_set(64, seed=1), separable_set(64, seed=2)
    chance = (
        max(sum(int(s["label"]) for s in held_out), 64 - sum(int(s["label"]) for s in held_out))
        / 64
    )
    before = _accuracy(model, held_out)
    trainer = L.Trainer(
        max_epochs=EPOCHS, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True))
    after = _accuracy(model, held_out)
    assert trainer.global_step == EPOCHS * 4
    assert before <= chance + 0.1, f"an untrained model is at chance: {before:.2f}"
    assert after >= 0.9, f"held-out accuracy {after:.2f} after {trainer.global_step} steps"

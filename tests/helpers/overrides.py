"""Override lists the tests train with, defined once (compose them: `[*SMOKE, "seed=3"]`)."""

from __future__ import annotations

from pathlib import Path

# a smoke training (tiny ViT, tiny demo set) that dumps no maps and scores none at the end: for
# tests that read neither rollouts/ nor summary.json's "explain" block (the session smoke_run
# fixture keeps both, and the tests of maps read it)
SMOKE = ["debug=smoke", "callbacks.maps=null", "explain_scores=null"]

# one epoch of it: a sweep job
ONE_EPOCH = [*SMOKE, "trainer.max_epochs=1"]

# the uninterrupted run that killed-and-resumed runs must equal (session fixture reference_run):
# deterministic, drop path on (the RNG state must be restored), tested at the end. Seed 20's
# validation balanced accuracy is 0.25, 0.1875, 0.25: epoch 1 stays best (ties epoch 3, beats 2)
REFERENCE = [*SMOKE, "trainer.deterministic=true", "trainer.max_epochs=3",
             "model.net.drop_path_rate=0.1", "seed=20"]  # fmt: skip

# a smoke run under DDP on CPU (2 gloo processes)
DDP = ["trainer=ddp_cpu", *SMOKE]

# a small ViT on the tiny real set (tests/helpers/real_set.py), long enough to learn it
TINY_REAL = [
    "model.net.img_size=[48,24]",
    "model.net.patch_size=8",
    "model.net.embed_dim=48",
    "model.net.depth=2",
    "model.net.num_heads=2",
    "trainer.max_epochs=12",
    "callbacks.maps=null",
    "explain_scores=null",
    "callbacks.progress=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.progress=false",
    "data.split.train=0.5",
    "data.split.val=0.25",
    "data.split.test=0.25",
]


def shared_demo(smoke_data_root: Path) -> str:
    """The override that reads the session's smoke demo set instead of generating one."""
    return f"data.demo.out_dir={smoke_data_root / 'data' / 'demo_smoke'}"


# a smoke model as an inspection line has it: good vs defect, photos letterboxed, a token head
# (the mask loss on the demo masks)
SMOKE_TOKEN_OVERRIDES = (
    "debug=smoke",
    "data.task=binary",
    "+data.resize=letterbox",
    "model.mask_loss.weight=1.0",
    "model.mask_loss.decision=mix",
    "data.train_masks=true",
)

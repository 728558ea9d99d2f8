"""Override lists the tests train with, defined once (compose them: `[*SMOKE, "seed=3"]`)."""

from __future__ import annotations

# a smoke training (tiny ViT, tiny demo set) that dumps no maps
SMOKE = ["debug=smoke", "callbacks.maps=null"]

# one epoch of it: a sweep job
ONE_EPOCH = [*SMOKE, "trainer.max_epochs=1"]

# deterministic smoke runs to interrupt and resume (drop path: the RNG state must be restored)
RESUME_4_EPOCHS = ["debug=smoke", "trainer.deterministic=true", "trainer.max_epochs=4", "seed=7",
                   "callbacks.maps=null", "model.net.drop_path_rate=0.1"]  # fmt: skip
RESUME_3_EPOCHS = ["debug=smoke", "trainer.deterministic=true", "trainer.max_epochs=3", "seed=3",
                   "model.net.drop_path_rate=0.1", "callbacks.maps=null", "test=false"]  # fmt: skip

# a smoke run under DDP on CPU (2 gloo processes)
DDP = ["trainer=ddp_cpu", "debug=smoke", "callbacks.maps=null"]

# a small ViT on the tiny real set (tests/helpers/real_set.py), long enough to learn it
TINY_REAL = [
    "model.net.img_size=[48,24]",
    "model.net.patch_size=8",
    "model.net.embed_dim=48",
    "model.net.depth=2",
    "model.net.num_heads=2",
    "trainer.max_epochs=12",
    "callbacks.maps=null",
    "callbacks.progress=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.progress=false",
    "data.split.train=0.5",
    "data.split.val=0.25",
    "data.split.test=0.25",
]

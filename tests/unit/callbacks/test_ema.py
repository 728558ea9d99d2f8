"""experiment=ema: the weights' moving average is what validation, best.ckpt and test use, and
a resume from last.ckpt carries on exactly (both the live and the averaged weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anomaly_vit.train import train
from tests.helpers import compose_config

EMA = ["debug=smoke", "experiment=ema", "trainer.deterministic=true", "seed=3",
       "model.scheduler=null", "callbacks.maps=null", "explain_scores=null"]  # fmt: skip


def _train(root: Path, name: str, *overrides: str) -> Path:
    run_dir = root / name
    train(compose_config("train", [*EMA, f"paths.root_dir={root}", *overrides], run_dir))
    return run_dir


def _weights(run_dir: Path, name: str = "last.ckpt") -> dict:
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)


def test_ema_weights_are_saved_and_a_resume_carries_on_exactly(tmp_path):
    full = _train(tmp_path, "full", "trainer.max_epochs=2")
    part = _train(tmp_path, "part", "trainer.max_epochs=1")
    _train(tmp_path, "part", "trainer.max_epochs=2", f"ckpt_path={part}/checkpoints/last.ckpt")

    last_full, last_part = _weights(full), _weights(part)
    averaged, live = last_full["state_dict"], last_full["current_model_state"]
    weights = [k for k in averaged if k.endswith(".weight")]
    assert all(not torch.equal(averaged[k], live[k]) for k in weights)  # an average, not a copy
    for key in ("state_dict", "current_model_state"):
        for name, value in last_full[key].items():  # weights bit for bit; the validation threshold
            if name == "defect_threshold":  # (a buffer the average carries) to float32 rounding
                assert float(last_part[key][name]) == pytest.approx(float(value), abs=1e-6)
            else:
                assert torch.equal(value, last_part[key][name]), (key, name)
    # best.ckpt holds the averaged weights of its epoch, which validation scored
    best = _weights(full, "best.ckpt")
    assert "current_model_state" in best

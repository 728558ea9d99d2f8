"""The defect threshold: Youden's J (tpr - fpr) at its best on the validation scores, kept in
[0, 1], left alone when validation cannot choose one, and used as is on the test split."""

from __future__ import annotations

import math

import hydra
import lightning as L
import pytest
import torch
from lightning.pytorch.trainer.states import RunningStage

from tests.helpers import compose_config

CLASSES = ["good", "crack"]
# defect scores (1 - p(good)) of hand-made validation images. Youden's J of "defect when the
# score >= t": t=0.40 -> 5/5 - 1/5 = 0.8, the best; t=0.30 -> 0.6, t=0.55 -> 0.6, t=0.70 -> 0.6
GOOD_SCORES = [0.05, 0.10, 0.20, 0.30, 0.62]
DEFECT_SCORES = [0.40, 0.55, 0.70, 0.80, 0.90]


@pytest.fixture
def model(tmp_path, monkeypatch):
    cfg = compose_config("train", ["debug=smoke"], tmp_path / "run")
    module = hydra.utils.instantiate(cfg.model, classes=CLASSES, _convert_="all")
    module.trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    monkeypatch.setattr(module, "log_dict", lambda *args, **kwargs: None)  # no fit loop to log to
    return module.eval()


def _logits_of(scores: list[float]) -> torch.Tensor:
    """Two-class logits whose defect score 1 - softmax[good] is exactly `scores`."""
    p = torch.tensor(scores, dtype=torch.float64)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1).float()


def _evaluate(model, stage: str, good: list[float], defect: list[float]) -> None:
    """Run `stage`'s steps on images whose model outputs give these scores, then its epoch end."""
    logits = _logits_of(good + defect)
    labels = torch.tensor([0] * len(good) + [1] * len(defect))
    model.forward = lambda images: logits
    getattr(model, f"{stage}_step")(
        {"image": torch.zeros(len(labels), 3, 4, 4), "label": labels}, 0
    )
    getattr(model, f"on_{stage}_epoch_end")()


def test_threshold_is_the_best_youden_point_of_validation(model):
    _evaluate(model, "validation", GOOD_SCORES, DEFECT_SCORES)
    assert float(model.defect_threshold) == pytest.approx(0.40, abs=1e-6)
    assert model.epoch_metrics["val/defect_threshold"] == pytest.approx(0.40, abs=1e-6)
    # the test split is judged at that threshold: 9 of these 10 images on the right side
    _evaluate(model, "test", GOOD_SCORES, DEFECT_SCORES)
    assert model.test_results["test/defect_acc_at_threshold"] == pytest.approx(0.9)
    assert model.test_results["test/defect_threshold"] == pytest.approx(0.40, abs=1e-6)


def test_threshold_moves_with_the_scores(model):
    # shift every defect above 0.62: the best cut is now the lowest defect score, J = 1
    _evaluate(model, "validation", GOOD_SCORES, [0.65, 0.7, 0.8, 0.85, 0.9])
    assert float(model.defect_threshold) == pytest.approx(0.65, abs=1e-6)


def test_scores_that_rank_the_wrong_way_give_the_top_of_the_range(model):
    # defects score below every good image: no cut beats J = 0, and the threshold is clamped to
    # 1.0 (nothing called a defect) instead of a value that would call good images defects
    _evaluate(model, "validation", [0.7, 0.8, 0.9], [0.1, 0.2, 0.3])
    assert float(model.defect_threshold) == 1.0


@pytest.mark.parametrize("case", ["sanity_check", "only_good", "only_defects"])
def test_threshold_is_kept_when_validation_cannot_choose(model, case):
    _evaluate(model, "validation", GOOD_SCORES, DEFECT_SCORES)
    before = float(model.defect_threshold)
    if case == "sanity_check":
        model.trainer.state.stage = RunningStage.SANITY_CHECKING
        assert model.trainer.sanity_checking
        _evaluate(model, "validation", [0.9, 0.95], [0.01, 0.02])
    else:
        good, defect = ([0.9, 0.95], []) if case == "only_good" else ([], [0.01, 0.02])
        _evaluate(model, "validation", good, defect)
    assert float(model.defect_threshold) == before and math.isclose(before, 0.40, abs_tol=1e-6)

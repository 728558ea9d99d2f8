"""The classifier's decision path (`model.mask_loss.decision`): the defect score formula, the
thresholded predictions of a good/defect model, and the metrics at the new threshold."""

from __future__ import annotations

import pytest
import torch

from anomaly_vit.model.module import ViTClassifier
from tests.helpers import TINY_NET


def _model(classes: list[str], decision: str) -> ViTClassifier:
    weight = 0.0 if decision == "head" else 1.0
    return ViTClassifier(
        classes=classes, net=dict(TINY_NET), mask_loss={"weight": weight, "decision": decision}
    )


LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
TOKENS = torch.tensor([[-3.0, 0.5, -1.0], [-2.0, -2.5, -4.0], [0.0, 2.0, 1.0]])


@pytest.mark.parametrize("classes", [["good", "defect"], ["defect", "good"]])
@pytest.mark.parametrize("decision", ["head", "tokens", "mix"])
def test_defect_score_reads_the_head_the_top_token_or_their_mean(classes, decision) -> None:
    model = _model(classes, decision)
    good = classes.index("good")
    head = 1 - torch.softmax(LOGITS, dim=-1)[:, good]
    tokens = torch.sigmoid(TOKENS.max(dim=1).values)
    expected = {"head": head, "tokens": tokens, "mix": (head + tokens) / 2}[decision]
    assert torch.allclose(model.defect_score(LOGITS, TOKENS), expected)
    assert torch.allclose(model.defect_score(LOGITS, None), head)  # no token head: the head


@pytest.mark.parametrize("classes", [["good", "defect"], ["defect", "good"]])
@pytest.mark.parametrize("decision", ["tokens", "mix"])
def test_a_binary_token_decision_predicts_by_its_threshold(classes, decision) -> None:
    model = _model(classes, decision)
    model.defect_threshold.fill_(0.3)
    good, defect = classes.index("good"), classes.index("defect")
    scores = torch.tensor([0.2, 0.3, 0.9, 0.29])
    predictions = model._predict(LOGITS[[0, 0, 0, 1]], scores)  # the head is not read
    assert predictions.tolist() == [good, defect, defect, good]


def test_the_head_decides_with_decision_head_or_more_than_two_classes() -> None:
    scores = torch.tensor([0.9, 0.9, 0.9])
    assert model_predicts_logits(_model(["good", "defect"], "head"), scores)
    assert model_predicts_logits(_model(["good", "scratch", "stain"], "mix"), scores)


def model_predicts_logits(model: ViTClassifier, scores: torch.Tensor) -> bool:
    logits = torch.randn(len(scores), len(model.classes))
    return torch.equal(model._predict(logits, scores), logits)


@pytest.mark.parametrize("classes", [["good", "defect"], ["defect", "good"]])
def test_validation_metrics_at_the_threshold_count_the_thresholded_scores(classes) -> None:
    model = _model(classes, "tokens")
    model.defect_threshold.fill_(0.5)
    scores = torch.tensor([0.1, 0.2, 0.6, 0.4, 0.8])
    is_defect = torch.tensor([0, 0, 0, 1, 1])
    # predicted defect: images 2 and 4 -> good recall 2/3, defect recall 1/2, 3 of 5 right
    metrics = model._metrics_at_threshold(scores, is_defect)
    assert metrics["val/acc"] == pytest.approx(3 / 5)
    assert metrics["val/balanced_acc"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    f1_good, f1_defect = 2 * 2 / (2 * 2 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 1)
    assert metrics["val/f1"] == pytest.approx((f1_good + f1_defect) / 2)

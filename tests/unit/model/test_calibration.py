"""End-of-training operating points: the pixel threshold (best per-pixel F1), mask IoU/Dice, and
the thresholds block with its warning when validation holds no defect."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from anomaly_vit.model.calibration import Calibrator, best_pixel_threshold, mask_overlap


def test_pixel_threshold_is_the_best_f1_cut():
    """Pixels (value, defect): (0.9, y) (0.7, y) (0.6, n) (0.5, y) (0.2, n) (0.1, n).
    Cuts: 0.9 -> F1 2/(1+3) = 0.5; 0.7 -> 4/(2+3) = 0.8; 0.6 -> 4/(3+3) = 0.667;
    0.5 -> 6/(4+3) = 0.857 (the best); 0.2 -> 6/8 = 0.75."""
    maps = np.array([[[0.9, 0.7, 0.6]], [[0.5, 0.2, 0.1]]])
    masks = np.array([[[1, 1, 0]], [[1, 0, 0]]], dtype=bool)
    best = best_pixel_threshold(maps, masks)
    assert best["value"] == 0.5
    assert best["f1"] == pytest.approx(6 / 7)
    assert (best["precision"], best["recall"]) == (pytest.approx(3 / 4), 1.0)


def test_pixel_threshold_keeps_ties_together_and_needs_both_classes():
    maps = np.array([[[0.5, 0.5, 0.1, 0.9]]])
    masks = np.array([[[1, 0, 0, 0]]], dtype=bool)
    # 0.9 -> F1 0; 0.5 -> tp 1, flagged 3: 2/(3+1) = 0.5; 0.1 -> 2/(4+1) = 0.4
    best = best_pixel_threshold(maps, masks)
    assert best["value"] == 0.5
    assert best["f1"] == pytest.approx(0.5)  # both 0.5 pixels flagged, not the defect alone
    assert best_pixel_threshold(maps, np.zeros_like(masks)) is None


def test_mask_overlap_is_the_mean_over_images():
    predicted = np.array([[[1, 1, 0, 0]], [[0, 0, 0, 0]]], dtype=bool)
    truth = np.array([[[0, 1, 1, 0]], [[0, 0, 0, 1]]], dtype=bool)
    # image 1: inter 1, union 3, dice 2/4; image 2: nothing predicted: 0 and 0
    overlap = mask_overlap(predicted, truth)
    assert overlap["iou"] == pytest.approx((1 / 3 + 0) / 2)
    assert overlap["dice"] == pytest.approx((0.5 + 0) / 2)


def _fake_outputs(is_defect):
    scores = np.linspace(0.1, 0.9, len(is_defect))
    maps = np.zeros((len(is_defect), 2, 2), np.float32)
    return {"scores": scores, "is_defect": np.array(is_defect), "maps": maps,
            "masks": np.zeros((len(is_defect), 2, 2), bool), "kind": "evidence"}  # fmt: skip


def test_validation_without_defects_warns_and_names_the_fallback(monkeypatch, caplog):
    calibrator = Calibrator(policies=["youden", "recall:1.0"], bootstrap_resamples=5)
    monkeypatch.setattr(calibrator, "outputs", lambda model, dm, split: _fake_outputs([False] * 4))
    with caplog.at_level(logging.WARNING):
        blocks = calibrator(None, None, "fpr:0.01")
    thresholds = blocks["thresholds"]
    assert "no defective image" in thresholds["warning"] and "fallback 0.5" in thresholds["warning"]
    assert "no defective image" in caplog.text
    assert set(thresholds["policies"]) == {"youden", "recall:1.0", "fpr:0.01"}
    assert all(p["fallback"] and p["threshold"] == 0.5 for p in thresholds["policies"].values())
    assert blocks["pixel_threshold"]["value"] is None
    assert blocks["pixel_threshold"]["method"].startswith("fallback")


def test_a_bad_policy_in_the_config_names_its_key():
    with pytest.raises(ValueError, match=r"calibration.policies='recall:2'"):
        Calibrator(policies=["youden", "recall:2"])

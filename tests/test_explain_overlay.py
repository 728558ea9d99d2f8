"""Overlays and figures: pixel contents of an overlay, figure shapes, atomic saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomaly_vit.viz.overlays import (
    display_image,
    evolution_figure,
    figure_to_array,
    mask_edges,
    overlay_array,
    probe_grid_figure,
    save_figure,
)

SIZE = 16


def _mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[4:10, 6:12] = True
    return mask


def test_overlay_array_blends_and_draws_the_contour():
    image = torch.zeros(3, SIZE, SIZE)  # CHW, black
    map_hw = torch.zeros(SIZE, SIZE)
    map_hw[0, 0] = 1.0
    out = overlay_array(image, map_hw, _mask(), alpha=1.0, cmap="gray", contour_rgb=(255, 0, 0))
    assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 255, 255]  # map peak, gray colormap at full alpha
    assert out[15, 0].tolist() == [0, 0, 0]
    edges = mask_edges(_mask())
    assert edges.sum() == 20  # boundary of a 6x6 square
    assert (out[edges] == [255, 0, 0]).all()
    assert out[6, 8].tolist() == [0, 0, 0]  # inside the mask, not on the edge
    half = overlay_array(np.ones((SIZE, SIZE, 3)), map_hw, alpha=0.5, cmap="gray")
    assert half[15, 0].tolist() == [128, 128, 128]


def test_display_image_layouts():
    normalised = torch.randn(3, SIZE, 20)
    shown = display_image(normalised)
    assert shown.shape == (SIZE, 20, 3) and shown.min() == 0.0 and shown.max() == 1.0
    gray_u8 = np.full((SIZE, SIZE), 255, dtype=np.uint8)
    assert (display_image(gray_u8) == 1.0).all()


def test_probe_grid_and_evolution_figures():
    images = torch.rand(2, 3, SIZE, SIZE)
    maps = {"rollout": torch.rand(2, SIZE, SIZE), "relevance": torch.rand(2, SIZE, SIZE)}
    masks = np.stack([_mask(), np.zeros((SIZE, SIZE), dtype=bool)])
    fig = probe_grid_figure(
        images,
        maps,
        masks,
        true_labels=[1, 0],
        pred_labels=torch.tensor([1, 1]),
        probs=torch.tensor([[0.1, 0.9], [0.4, 0.6]]),
        class_names=["good", "scratch"],
    )
    axes = np.asarray(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["image", "rollout", "relevance"]
    assert axes[0, 0].get_xlabel() == "true: scratch\npred: scratch (0.90)"
    assert axes[1, 0].get_xlabel() == "true: good\npred: scratch (0.60)"
    assert axes[0, 1].get_xlabel().startswith("contrast ")
    pixels = figure_to_array(fig)
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8
    evolution = evolution_figure(images, {20: maps["rollout"], 10: maps["relevance"]}, masks)
    titles = [ax.get_title() for ax in evolution.axes[:2]]
    assert titles == ["epoch 10", "epoch 20"]
    assert len(evolution.axes) == 4


def test_save_figure_is_atomic(tmp_path):
    fig = evolution_figure(torch.rand(1, 3, SIZE, SIZE), {1: torch.rand(1, SIZE, SIZE)})
    path = save_figure(fig, tmp_path / "rollouts" / "epoch_0001.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["epoch_0001.png"]
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "bad.notaformat")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

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
    assert [ax.get_title().split("\n")[0] for ax in axes[0]] == ["image", "rollout", "relevance"]
    assert axes[0, 0].get_xlabel() == "true: scratch\npred: scratch (0.90)"
    assert axes[1, 0].get_xlabel() == "true: good\npred: scratch (0.60)"
    pixels = figure_to_array(fig)
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8
    evolution = evolution_figure(images, {20: maps["rollout"], 10: maps["relevance"]}, masks)
    titles = [ax.get_title() for ax in evolution.axes[:2]]
    assert evolution.get_suptitle().startswith("rollout over training (scale ")
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


def _shown_colours(ax) -> np.ndarray:
    """RGBA [H, W, 4] of the map layer (the second image) drawn on a panel."""
    layer = ax.images[1]
    return layer.to_rgba(layer.get_array())


def test_panels_of_a_kind_share_one_colour_scale():
    peaked = torch.linspace(0.0, 1.0, SIZE * SIZE).reshape(SIZE, SIZE)
    flat = 0.45 + 0.1 * torch.rand(SIZE, SIZE)  # range [0.45, 0.55]: nearly flat
    flat[0, 0], flat[0, 1] = 0.45, 0.55
    grid = probe_grid_figure(
        torch.zeros(2, 3, SIZE, SIZE), {"relevance": torch.stack([peaked, flat])}
    )
    axes = np.asarray(grid.axes).reshape(2, 2)
    assert "scale 0 to 1" in axes[0, 1].get_title()
    top, bottom = _shown_colours(axes[0, 1]), _shown_colours(axes[1, 1])
    # the flat map's maximum is not drawn in the peaked map's top colour, as a per-panel
    # min-max stretch would draw it ...
    assert not np.allclose(bottom[0, 1], top.reshape(-1, 4)[-1])
    # ... but in the colour the peaked map has at the same value
    at_055 = int(np.argmin(np.abs(peaked.flatten().numpy() - 0.55)))
    assert np.allclose(bottom[0, 1], top.reshape(-1, 4)[at_055], atol=0.02)
    # a nearly flat map alone (max / min 1.01) is drawn nearly flat, not stretched to the colormap
    alone = probe_grid_figure(torch.zeros(1, 3, SIZE, SIZE), {"r": (1 + 0.01 * peaked)[None]})
    colours = _shown_colours(alone.axes[1])[..., :3]
    assert np.ptp(colours.reshape(-1, 3), axis=0).max() < 0.1
    # maps of different kinds keep their own scales
    other = probe_grid_figure(
        torch.zeros(1, 3, SIZE, SIZE), {"a": peaked[None], "b": 10 * peaked[None]}
    )
    a_ax, b_ax = other.axes[1], other.axes[2]
    assert np.allclose(_shown_colours(a_ax), _shown_colours(b_ax))
    assert "scale 0 to 10" in b_ax.get_title()


def test_each_panel_shows_the_number_it_is_given():
    maps = torch.rand(2, SIZE, SIZE) + 1.0
    scores = [0.4242, 0.0512]  # one per probe (row)
    images = torch.rand(2, 3, SIZE, SIZE)
    for fig, panels in (
        (
            probe_grid_figure(
                images, {"rollout": maps}, panel_scores={"rollout": scores}, panel_score_name="top"
            ),
            [1, 3],
        ),
        (
            evolution_figure(
                images,
                {1: maps, 2: maps * 2},
                panel_scores={1: scores, 2: scores},
                panel_score_name="top",
            ),
            [0, 1, 2, 3],
        ),
    ):
        renderer = fig.canvas.get_renderer()
        figure_to_array(fig)
        for index in panels:
            ax = fig.axes[index]
            (text,) = [t for t in ax.texts if t.get_text().startswith("top: ")]
            row = index // (len(fig.axes) // 2)
            assert text.get_text() == f"top: {scores[row]:.2f}"
            box, panel = text.get_window_extent(renderer), ax.get_window_extent(renderer)
            assert panel.x0 <= box.x0 and box.x1 <= panel.x1
            assert panel.y0 <= box.y0 and box.y1 <= panel.y1


@pytest.mark.parametrize("columns", [1, 4])
def test_a_long_title_stays_inside_the_figure(columns):
    title = (
        "global epoch 40\n"
        + "share of the map in the defect mask: "
        + ", ".join(f"kind{i} 0.0{i}" for i in range(8))
    )
    maps = {f"kind{i}": torch.rand(1, SIZE, SIZE) for i in range(columns)}
    fig = probe_grid_figure(torch.rand(1, 3, SIZE, SIZE), maps, title=title)
    figure_to_array(fig)
    renderer = fig.canvas.get_renderer()
    box = fig._suptitle.get_window_extent(renderer)  # matplotlib has no public getter
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
    assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
    assert fig.get_suptitle().replace("\n", " ").split() == title.replace("\n", " ").split()

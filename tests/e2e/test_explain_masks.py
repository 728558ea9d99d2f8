"""explain scores each image's map against THAT image's mask, as it lies on the image: the
scores in predictions.csv equal the ones computed here from the model's maps and the mask."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_vit.explain.checkpoint import load_classifier
from anomaly_vit.explain.command import explain
from anomaly_vit.maps.kinds import explain_images
from anomaly_vit.maps.scores import SCORE_NAMES, score_maps
from tests.helpers import compose_config

SIDE_PX = 64  # the smoke model's input size: images are not resized
KIND = "evidence"


def test_each_image_is_scored_against_its_own_unflipped_mask(tmp_path, smoke_run) -> None:
    rng = np.random.default_rng(0)
    root, masks_dir = tmp_path / "input", tmp_path / "masks"
    root.mkdir()
    masks_dir.mkdir()
    masks = []
    for index, (top, left) in enumerate([(0, 0), (40, 8)]):  # off-centre, not symmetric
        Image.fromarray(rng.integers(0, 256, (SIDE_PX, SIDE_PX, 3), dtype=np.uint8)).save(
            root / f"img{index}.png"
        )
        mask = np.zeros((SIDE_PX, SIDE_PX), np.uint8)
        mask[top : top + 20, left : left + 12] = 255
        Image.fromarray(mask).save(masks_dir / f"img{index}.png")
        masks.append(torch.from_numpy(mask > 0))
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    overrides = [f"ckpt_path={ckpt}", f"input={root}", f"masks={masks_dir}", f"kinds=[{KIND}]",
                 "overlays=false", "device=cpu"]  # fmt: skip
    explain(compose_config("explain", overrides, tmp_path / "explain"))
    with (tmp_path / "explain" / "predictions.csv").open(newline="") as handle:
        rows = {row["path"].rsplit("/", 1)[-1]: row for row in csv.DictReader(handle)}

    model, _ = load_classifier(ckpt)
    images = torch.stack(
        [
            torch.tensor(np.asarray(Image.open(root / f"img{i}.png"))).permute(2, 0, 1)
            for i in (0, 1)
        ]
    )
    maps = explain_images(model, images, [KIND], good_class=model.good_index).maps
    patch = model.net.patch_embed.patch_size
    for index in (0, 1):
        row = rows[f"img{index}.png"]
        # this image's map against this image's mask alone
        expected = score_maps(maps[KIND][index : index + 1], masks[index][None], patch, patch[0])
        for name in ("energy", "pixel_auroc", "pointing"):
            assert name in SCORE_NAMES
            want = expected[name]
            assert float(row[f"{KIND}/{name}"]) == pytest.approx(want, abs=1e-5), (index, name)

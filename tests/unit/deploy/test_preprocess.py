"""The inferencer's preprocessing is training's: the same decode and fit functions, the same
normalisation to the bit, and the map's way back to the photo equal to explain's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_vit.data.image_io import load_rgb
from anomaly_vit.data.resize import ResizeMode, fit_image, placement
from anomaly_vit.deploy.preprocess import map_to_original, model_input, to_rgb
from anomaly_vit.maps.readout import map_to_original as torch_map_to_original
from anomaly_vit.model.module import IMAGENET_MEAN, IMAGENET_STD, ViTClassifier
from tests.helpers import TINY_NET

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("mode", list(ResizeMode))
@pytest.mark.parametrize("original_hw", [(37, 90), (90, 37), (64, 64)])
def test_map_back_to_the_photo_equals_explains(mode, original_hw):
    input_hw = (32, 48)
    map_hw = RNG.random(input_hw).astype(np.float32)
    where = placement(original_hw, input_hw, mode)
    ours = map_to_original(map_hw, where)
    theirs = torch_map_to_original(torch.from_numpy(map_hw)[None], where)[0].numpy()
    assert ours.shape == original_hw
    assert (np.isnan(ours) == np.isnan(theirs)).all()
    assert np.nanmax(np.abs(ours - theirs)) < 1e-5


def test_normalised_input_equals_the_classifiers_to_the_bit():
    model = ViTClassifier(["good", "defect"], dict(TINY_NET)).eval()
    rgb = RNG.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    size_hw = tuple(model.net.patch_embed.img_size)
    ours, where = model_input(rgb, size_hw, ResizeMode.LETTERBOX, IMAGENET_MEAN, IMAGENET_STD)
    fitted = torch.from_numpy(fit_image(rgb, size_hw, ResizeMode.LETTERBOX)).permute(2, 0, 1)
    theirs = model.normalize(fitted[None])[0].numpy()
    assert ours.dtype == np.float32 and (ours == theirs).all()
    assert where.original_hw == (40, 70) and where.input_hw == size_hw


@pytest.mark.parametrize(
    ("mode", "shape"), [("L", (30, 20)), ("RGB", (30, 20, 3)), ("RGBA", (30, 20, 4))]
)
def test_arrays_images_and_files_decode_alike(tmp_path, mode, shape):
    """An array, a PIL image and a file of the same pixels give training's RGB (alpha on black)."""
    array = RNG.integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(array, mode).save(path)
    from_file = load_rgb(path)
    assert (to_rgb(array) == from_file).all()
    assert (to_rgb(Image.fromarray(array, mode)) == from_file).all()
    assert (to_rgb(path) == from_file).all()

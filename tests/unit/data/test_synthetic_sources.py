"""CutPaste, Perlin and transplant sources: masks, changed pixels, reproducibility, no leak."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.data.records import SourceContext
from anomaly_vit.data.sources import SingleFolderSource, SourceError
from anomaly_vit.data.synthetic import (
    CutPasteSource,
    PaintedDefectSource,
    PerlinSource,
    TransplantSource,
)
from anomaly_vit.data.synthetic.perlin import perlin_noise

HEIGHT, WIDTH = 48, 64
SPLIT = {"g1": "train", "g2": "train", "g3": "val", "g4": "test",
         "d1": "train", "d2": "val", "d3": "test"}  # fmt: skip
TRAIN = {item for item, split in SPLIT.items() if split == "train"}
DONOR_BOX = (slice(10, 20), slice(30, 44))  # rows, columns of d1's defect


def _context(tmp_path: Path, seed: int = 0) -> SourceContext:
    root, masks = tmp_path / "photos", tmp_path / "masks"
    if not root.exists():
        rng = np.random.default_rng(7)
        for item in SPLIT:
            label = "good" if item.startswith("g") else "scratch"
            image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            (root / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / label / f"{item}.png")
            if label != "good":
                mask = np.zeros((HEIGHT, WIDTH), np.uint8)
                mask[DONOR_BOX] = 255
                (masks / label).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(masks / label / f"{item}.png")
    base = SingleFolderSource(root=str(root), masks_root=str(masks), name="real")
    return SourceContext(
        records={"real": base.scan(None)}, split_of_item=SPLIT, sources={"real": base}, seed=seed
    )


def _source(kind: str, **kwargs):
    cls = {"cutpaste": CutPasteSource, "perlin": PerlinSource, "transplant": TransplantSource}
    return cls[kind](base="real", name=kind, **kwargs)


KINDS = ["cutpaste", "perlin", "transplant"]
SETTINGS = {  # the variants each test runs per kind: defaults and the options
    "cutpaste": [{}, {"rotation_deg": [10, 80], "feather_px": 1.5, "aspect_range": [3, 6]}],
    "perlin": [{}, {"texture": "self", "feather_px": 1.0, "scale_range": [0, 2]}],
    "transplant": [{}, {"placement": "same", "match_mean": False, "feather_px": 0.0}],
}
CASES = [(kind, settings) for kind in KINDS for settings in SETTINGS[kind]]


@pytest.mark.parametrize(("kind", "settings"), CASES)
def test_built_only_from_good_train_images_and_train_donors(tmp_path, kind, settings) -> None:
    records = _source(kind, variants_per_image=3, **settings).scan(_context(tmp_path))
    assert len(records) == 2 * 3 and {r.item_id for r in records} == {"g1", "g2"}
    assert {r.view for r in records} == {kind} and len(set(records)) == len(records)
    for record in records:
        assert record.parents[0].label == "good"
        assert all(p.item_id in TRAIN for p in record.parents), "no val/test item is ever read"
    if kind == "transplant":
        assert {r.parents[1].item_id for r in records} == {"d1"}
        assert {r.label for r in records} == {"scratch"}  # the donor's class
    else:
        assert {r.label for r in records} == {kind}


@pytest.mark.parametrize(("kind", "settings"), CASES)
def test_mask_inside_the_image_and_pixels_change_only_inside_it(tmp_path, kind, settings) -> None:
    source = _source(kind, variants_per_image=4, **settings)
    context = _context(tmp_path)
    for record in source.scan(context):
        parent, _ = context.sources["real"].load(record.parents[0])
        image, mask = source.load(record)
        assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
        assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == bool
        assert 0.005 < mask.mean() < 0.5
        changed = (image != parent).any(axis=2)
        assert not changed[~mask].any(), "no pixel outside the mask is touched"
        assert changed[mask].mean() > 0.5, "most pixels inside the mask change"


@pytest.mark.parametrize(("kind", "settings"), CASES)
def test_reproducible_per_record_and_seed(tmp_path, kind, settings) -> None:
    def render(seed: int, reverse: bool = False) -> list[np.ndarray]:
        source = _source(kind, variants_per_image=2, **settings)
        records = source.scan(_context(tmp_path, seed=seed))
        order = records[::-1] if reverse else records
        images = {r: source.load(r)[0] for r in order}
        return [images[r] for r in records]

    first, backwards, other = render(0), render(0, reverse=True), render(1)
    for a, b in zip(first, backwards, strict=True):
        np.testing.assert_array_equal(a, b)  # load order does not matter: one generator a record
    if settings.get("placement") != "same":  # a same-place transplant has nothing random left
        assert any((a != b).any() for a, b in zip(first, other, strict=True))
        assert (first[0] != first[1]).any(), "variants of one image differ"


def test_same_place_transplant_copies_the_donor_defect_exactly(tmp_path) -> None:
    context = _context(tmp_path)
    source = _source("transplant", placement="same", match_mean=False, feather_px=0.0)
    record = source.scan(context)[0]
    donor, donor_mask = context.sources["real"].load(record.parents[1])
    image, mask = source.load(record)
    np.testing.assert_array_equal(mask, donor_mask)
    np.testing.assert_array_equal(image[mask], donor[mask])


def test_matched_mean_shifts_the_pasted_defect_to_the_new_background(tmp_path) -> None:
    context = _context(tmp_path)
    plain = _source("transplant", placement="same", match_mean=False, feather_px=0.0)
    matched = _source("transplant", placement="same", match_mean=True, feather_px=0.0)
    record = plain.scan(context)[0]
    matched.scan(context)
    donor, _ = context.sources["real"].load(record.parents[1])
    good, _ = context.sources["real"].load(record.parents[0])
    ring = np.zeros((HEIGHT, WIDTH), bool)
    ring[9:21, 29:45] = True
    ring[DONOR_BOX] = False
    shift = good[ring].mean(axis=0) - donor[ring].mean(axis=0)
    inside = matched.load(record)[0][DONOR_BOX].astype(float)
    expected = np.clip(donor[DONOR_BOX] + shift, 0, 255)
    assert np.abs(inside - expected).max() <= 0.5 + 1e-9
    assert (plain.load(record)[0][DONOR_BOX] == donor[DONOR_BOX]).all()


def test_perlin_noise_is_smooth_bounded_and_seeded() -> None:
    a = perlin_noise((64, 96), (4, 8), np.random.default_rng(3))
    np.testing.assert_array_equal(a, perlin_noise((64, 96), (4, 8), np.random.default_rng(3)))
    assert a.shape == (64, 96) and np.abs(a).max() <= 1.0 + 1e-9 and a.std() > 0.1
    assert np.abs(a[::16, ::12]).max() < 1e-9  # zero on the gradient grid's corners
    assert np.abs(np.diff(a, axis=1)).max() < 0.2  # smooth: small steps between neighbours


def test_cutpaste_patch_area_follows_area_range(tmp_path) -> None:
    source = _source("cutpaste", variants_per_image=8, area_range=[0.05, 0.1])
    shares = [source.load(r)[1].mean() for r in source.scan(_context(tmp_path))]
    assert min(shares) >= 0.04 and max(shares) <= 0.115


def test_config_errors_name_the_key(tmp_path) -> None:
    with pytest.raises(SourceError, match=r"data\.sources\.cutpaste\.angle is not a setting"):
        _source("cutpaste", angle=3)
    with pytest.raises(SourceError, match=r"data\.sources\.perlin\.texture = 'dtd'"):
        _source("perlin", texture="dtd")
    with pytest.raises(SourceError, match=r"data\.sources\.transplant\.placement"):
        _source("transplant", placement="mirror")
    with pytest.raises(SourceError, match=r"data\.sources\.cutpaste\.area_range"):
        _source("cutpaste", area_range=[0.2, 0.1])
    with pytest.raises(SourceError, match="variants_per_image"):
        _source("perlin", variants_per_image=0)


def test_transplant_without_masked_train_defects_is_a_clear_error(tmp_path) -> None:
    context = _context(tmp_path)
    context.split_of_item = {**SPLIT, "d1": "val"}
    with pytest.raises(SourceError, match=r"defective train images with masks.*'real'"):
        _source("transplant").scan(context)


@pytest.mark.parametrize("kind", [*KINDS, "painted"])
def test_a_record_relabelled_by_the_binary_task_still_loads(tmp_path, kind) -> None:
    source = (
        PaintedDefectSource(base="real", name="painted") if kind == "painted" else _source(kind)
    )
    record = source.scan(_context(tmp_path))[0]
    image, mask = source.load(dataclasses.replace(record, label="defect"))  # what apply_task does
    np.testing.assert_array_equal(image, source.load(record)[0])
    assert mask.any()

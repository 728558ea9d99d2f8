"""Tests for painted defects: parents, masks and their area, pixels, determinism, labels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.data.records import SourceContext
from anomaly_vit.data.sources import SingleFolderSource, SourceError
from anomaly_vit.data.synthetic.painted import PaintedDefectSource, stable_seed

SIDE = 64
GRAY = 128
SPLIT = {"g1": "train", "g2": "train", "g3": "val", "g4": "test", "d1": "train"}


def _context(tmp_path: Path, seed: int = 0, split: dict[str, str] = SPLIT) -> SourceContext:
    root = tmp_path / "photos"
    if not root.exists():
        for item in ("g1", "g2", "g3", "g4"):
            path = root / "good" / f"{item}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((SIDE, SIDE, 3), GRAY, np.uint8)).save(path)
        (root / "scratch").mkdir()
        Image.fromarray(np.zeros((SIDE, SIDE, 3), np.uint8)).save(root / "scratch" / "d1.png")
    base = SingleFolderSource(root=str(root), name="real")
    return SourceContext(
        records={"real": base.scan(None)}, split_of_item=split, sources={"real": base}, seed=seed
    )


def test_only_good_train_images_are_parents(tmp_path: Path) -> None:
    source = PaintedDefectSource(base="real", variants_per_image=2, name="painted")
    records = source.scan(_context(tmp_path))
    assert len(records) == 2 * 3 * 2  # 2 good train images x 3 kinds x 2 variants
    assert {r.item_id for r in records} == {"g1", "g2"}
    assert {r.parents[0].label for r in records} == {"good"}
    assert {r.view for r in records} == {"painted"}
    assert {r.variant for r in records} == {0, 1}
    assert [r.label for r in records[:6]] == ["scratch"] * 2 + ["stain"] * 2 + ["crack"] * 2
    assert all(r.source == "painted" and r.mask_path is not None for r in records)
    assert len(set(records)) == len(records)


@pytest.mark.parametrize("kind", ["scratch", "stain", "crack"])
def test_mask_area_and_pixels(tmp_path: Path, kind: str) -> None:
    area = (0.01, 0.04)
    source = PaintedDefectSource(
        base="real",
        kinds=[kind],
        variants_per_image=3,
        placement={"area_range": area},
        name="painted",
    )
    for record in source.scan(_context(tmp_path)):
        image, mask = source.load(record)
        assert image.shape == (SIDE, SIDE, 3) and image.dtype == np.uint8
        assert mask.shape == (SIDE, SIDE) and mask.dtype == bool
        assert area[0] <= mask.mean() <= area[1]
        changed = (image != GRAY).any(axis=2)
        assert changed[mask].all(), "every pixel inside the mask is painted"
        assert not changed[~mask].any(), "no pixel outside the mask is touched"


def test_deterministic_per_seed_and_variant(tmp_path: Path) -> None:
    def render(seed: int) -> list[np.ndarray]:
        source = PaintedDefectSource(base="real", variants_per_image=2, name="painted")
        return [source.load(r)[0] for r in source.scan(_context(tmp_path, seed=seed))]

    first, again, other = render(0), render(0), render(1)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any((a != b).any() for a, b in zip(first, other, strict=True))
    assert (first[0] != first[1]).any(), "variants of one image differ"


def test_stable_seed_is_the_same_in_another_process_and_differs_per_part() -> None:
    parts = (0, "g1", "single", 0, "crack")
    # another interpreter with another hash seed: hash() would differ there, the seed must not
    code = "from anomaly_vit.data.synthetic.painted import stable_seed; print(stable_seed(0, 'g1', 'single', 0, 'crack'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert int(out.stdout) == stable_seed(*parts)
    assert 0 <= stable_seed(*parts) < 2**64
    changed = [(1, "g1", "single", 0, "crack"), (0, "g2", "single", 0, "crack"),
               (0, "g1", "left", 0, "crack"), (0, "g1", "single", 1, "crack"),
               (0, "g1", "single", 0, "stain"), (0, "g1single", "", 0, "crack")]  # fmt: skip
    assert len({stable_seed(*parts), *(stable_seed(*c) for c in changed)}) == 1 + len(changed)


def test_label_of_kind(tmp_path: Path) -> None:
    source = PaintedDefectSource(
        base="real", label_of_kind={"stain": "scratch", "crack": "dent"}, name="painted"
    )
    labels = [r.label for r in source.scan(_context(tmp_path)) if r.item_id == "g1"]
    assert labels == ["scratch", "scratch", "dent"]
    with pytest.raises(SourceError, match=r"data\.sources\.painted\.label_of_kind"):
        PaintedDefectSource(
            base="real", kinds=["stain"], label_of_kind={"crack": "x"}, name="painted"
        )


def test_no_good_train_images(tmp_path: Path) -> None:
    split = {"g1": "val", "g2": "test", "g3": "val", "g4": "test", "d1": "train"}
    with pytest.raises(SourceError) as info:
        PaintedDefectSource(base="real", name="painted").scan(_context(tmp_path, split=split))
    assert "'good'" in str(info.value) and "'real'" in str(info.value)
    assert "data.sources.painted" in str(info.value)


def test_config_errors() -> None:
    with pytest.raises(SourceError, match="kinds"):
        PaintedDefectSource(base="real", kinds=["dent"])
    with pytest.raises(SourceError, match=r"data\.sources\.<name>\.scratch\.length"):
        PaintedDefectSource(base="real", scratch={"length": [0.5, 0.2]})
    with pytest.raises(SourceError, match=r"stain\.tint"):
        PaintedDefectSource(base="real", stain={"tint": [0.5, 0.5]})
    with pytest.raises(SourceError, match=r"crack\.wiggle is not a setting"):
        PaintedDefectSource(base="real", crack={"wiggle": 1.0})
    with pytest.raises(SourceError, match="variants_per_image"):
        PaintedDefectSource(base="real", variants_per_image=0)


def test_unreachable_area_is_a_clear_error(tmp_path: Path) -> None:
    source = PaintedDefectSource(
        base="real",
        kinds=["stain"],
        stain={"radius": [0.4, 0.5]},
        placement={"max_tries": 3},
        name="painted",
    )
    record = source.scan(_context(tmp_path))[0]
    with pytest.raises(SourceError, match=r"area_range"):
        source.load(record)

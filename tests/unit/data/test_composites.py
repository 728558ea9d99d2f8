"""Tests for composites: exact fusion values, union masks, pairing and config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.data.records import SourceContext
from anomaly_vit.data.sources import PairedFolderSource, SingleFolderSource, SourceError
from anomaly_vit.data.synthetic.composites import (
    CompositeSource,
    fuse,
    fuse_absdiff,
    fuse_mean,
    fuse_stack,
)

LEFT = np.array([[[10, 20, 30], [255, 0, 100]], [[0, 0, 0], [1, 2, 3]]], np.uint8)
RIGHT = np.array([[[20, 20, 31], [0, 255, 100]], [[255, 255, 255], [2, 2, 2]]], np.uint8)


def test_fuse_mean_rounds_half_up() -> None:
    expected = [[[15, 20, 31], [128, 128, 100]], [[128, 128, 128], [2, 2, 3]]]
    np.testing.assert_array_equal(fuse_mean(LEFT, RIGHT), expected)


def test_fuse_absdiff() -> None:
    expected = [[[10, 0, 1], [255, 255, 0]], [[255, 255, 255], [1, 0, 1]]]
    np.testing.assert_array_equal(fuse_absdiff(LEFT, RIGHT), expected)


def test_fuse_stack_gray_and_difference() -> None:
    # gray(L) = 18.15, 87.645, 0, 1.815 ; gray(R) = 21.254, 161.085, 255, 2.0
    expected = [[[18, 21, 3], [88, 161, 73]], [[0, 255, 255], [2, 2, 0]]]
    out = fuse_stack(LEFT, RIGHT)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    # gray matches PIL's convert("L") up to its integer rounding
    pil = np.asarray(Image.fromarray(LEFT).convert("L"))
    assert np.abs(pil.astype(int) - out[..., 0]).max() <= 1


def test_fuse_errors() -> None:
    with pytest.raises(ValueError, match="absdiff"):
        fuse("max", LEFT, RIGHT)
    with pytest.raises(ValueError, match="shape"):
        fuse("mean", LEFT, RIGHT[:1])


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _scan_base(root: Path, name: str = "cams") -> tuple[PairedFolderSource, SourceContext]:
    base = PairedFolderSource(root=str(root), name=name)
    context = SourceContext(records={name: base.scan(None)}, split_of_item={}, sources={name: base})
    return base, context


@pytest.fixture
def paired_root(tmp_path: Path) -> Path:
    root = tmp_path / "cams"
    _save(root / "left" / "scratch" / "p.png", LEFT)
    _save(root / "right" / "scratch" / "p.png", RIGHT)
    left_mask = np.zeros((2, 2), np.uint8)
    left_mask[0, 0] = 255
    _save(root / "masks" / "left" / "scratch" / "p.png", left_mask)
    right_mask = np.zeros((2, 2), np.uint8)
    right_mask[1, 1] = 255
    _save(root / "masks" / "right" / "scratch" / "p.png", right_mask)
    _save(root / "left" / "good" / "q.png", LEFT)
    _save(root / "right" / "good" / "q.png", RIGHT)
    _save(root / "left" / "good" / "lonely.png", LEFT)  # one view only
    return root


def test_records_load_and_union_mask(paired_root: Path) -> None:
    _, context = _scan_base(paired_root)
    source = CompositeSource(base="cams", name="comp")
    assert source.synthetic
    records = source.scan(context)
    assert [(r.item_id, r.label, r.view) for r in records] == [
        (item, label, mode)
        for item, label in (("q", "good"), ("p", "scratch"))
        for mode in ("mean", "absdiff", "stack")
    ]
    assert source.skipped == ["lonely"]
    record = records[3]
    left, right = record.parents
    assert (left.view, right.view) == ("left", "right")
    assert record.path == f"{left.path}|{right.path}"
    assert record.source == "comp" and record.mask_path is not None
    assert records[0].mask_path is None

    by_view = {r.view: source.load(r) for r in records if r.item_id == "p"}
    np.testing.assert_array_equal(by_view["absdiff"][0], fuse_absdiff(LEFT, RIGHT))
    np.testing.assert_array_equal(by_view["stack"][0], fuse_stack(LEFT, RIGHT))
    np.testing.assert_array_equal(by_view["mean"][1], [[True, False], [False, True]])
    assert source.load(records[0])[1] is None


def test_modes_subset_and_unknown_mode() -> None:
    assert CompositeSource(base="cams", modes=["absdiff"]).modes == ("absdiff",)
    with pytest.raises(SourceError, match=r"\['absdiff', 'mean', 'stack'\]") as info:
        CompositeSource(base="cams", modes=["mean", "median"])
    assert "median" in str(info.value)


def test_single_view_base_is_a_config_error(tmp_path: Path) -> None:
    _save(tmp_path / "flat" / "good" / "a.png", LEFT)
    base = SingleFolderSource(root=str(tmp_path / "flat"), name="flat")
    context = SourceContext(
        records={"flat": base.scan(None)}, split_of_item={}, sources={"flat": base}
    )
    with pytest.raises(SourceError) as info:
        CompositeSource(base="flat", name="comp").scan(context)
    message = str(info.value)
    assert "left/right pairs" in message and "'flat'" in message
    assert "data.sources.comp" in message and "weight to 0" in message


def test_unknown_base(paired_root: Path) -> None:
    _, context = _scan_base(paired_root)
    with pytest.raises(SourceError, match=r"data\.sources\.comp\.base = 'nope'"):
        CompositeSource(base="nope", name="comp").scan(context)


def test_left_right_size_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "cams"
    _save(root / "left" / "good" / "a.png", LEFT)
    _save(root / "right" / "good" / "a.png", np.zeros((3, 3, 3), np.uint8))
    _, context = _scan_base(root)
    source = CompositeSource(base="cams", name="comp")
    (record, *_) = source.scan(context)
    with pytest.raises(SourceError, match="same size"):
        source.load(record)

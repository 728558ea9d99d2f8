"""Tests for the file-based sources: paired folders, class folders, renders and manifests."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from anomaly_vit.data.records import SourceContext
from anomaly_vit.data.sources import (
    ManifestSource,
    PairedFolderSource,
    SingleFolderSource,
    SourceError,
)
from tests.helpers import image_file, mask_file


def _context() -> SourceContext:
    return SourceContext(records={}, split_of_item={}, sources={})


def _paired_tree(root: Path) -> None:
    for view in ("left", "right"):
        image_file(root / view / "good" / "a.png", 10)
        image_file(root / view / "scratch" / "b.png", 20)
    mask_file(root / "masks" / "left" / "scratch" / "b.png")
    image_file(root / "left" / "scratch" / "c.png")  # unpaired: no right view
    image_file(root / "left" / "stain" / "d.jpg")  # class only in left


def test_paired_layout_masks_and_unpaired(tmp_path: Path, caplog) -> None:
    root = tmp_path / "cams"
    _paired_tree(root)
    source = PairedFolderSource(root=str(root), name="real")
    with caplog.at_level(logging.WARNING):
        records = source.scan(_context())
    keys = [(r.label, r.item_id, r.view) for r in records]
    assert keys == [
        ("good", "a", "left"),
        ("good", "a", "right"),
        ("scratch", "b", "left"),
        ("scratch", "b", "right"),
        ("scratch", "c", "left"),
        ("stain", "d", "left"),
    ]
    assert all(r.source == "real" for r in records)
    masks = {(r.item_id, r.view): r.mask_path for r in records}
    assert masks[("b", "left")] == str(root / "masks" / "left" / "scratch" / "b.png")
    assert masks[("b", "right")] is None and masks[("a", "left")] is None
    assert source.unpaired == [
        str(root / "left" / "scratch" / "c.png"),
        str(root / "left" / "stain" / "d.jpg"),
    ]
    assert "c.png" in caplog.text and "d.jpg" in caplog.text

    image, mask = source.load(records[2])
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8 and image[0, 0, 0] == 20
    assert mask is not None and mask.sum() == 1 and mask[2, 3]
    assert source.load(records[0])[1] is None


def test_paired_unpaired_policies(tmp_path: Path) -> None:
    root = tmp_path / "cams"
    _paired_tree(root)
    dropped = PairedFolderSource(root=str(root), name="r", on_unpaired="drop").scan(_context())
    assert {r.item_id for r in dropped} == {"a", "b"}
    with pytest.raises(SourceError, match="c.png"):
        PairedFolderSource(root=str(root), name="r", on_unpaired="error").scan(_context())
    with pytest.raises(SourceError, match="on_unpaired"):
        PairedFolderSource(root=str(root), on_unpaired="sometimes")


def test_paired_classes_filter_and_custom_masks_root(tmp_path: Path) -> None:
    root = tmp_path / "cams"
    _paired_tree(root)
    mask_file(tmp_path / "other" / "right" / "good" / "a.png")
    source = PairedFolderSource(
        root=str(root), masks_root=str(tmp_path / "other"), classes=["good"], name="r"
    )
    records = source.scan(_context())
    assert [(r.view, r.mask_path is not None) for r in records] == [
        ("left", False),
        ("right", True),
    ]
    with pytest.raises(SourceError, match="crack"):
        PairedFolderSource(root=str(root), classes=["good", "crack"], name="r").scan(_context())


def test_paired_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data\.sources\.real\.root") as info:
        PairedFolderSource(root=str(tmp_path / "nowhere"), name="real").scan(_context())
    assert "nowhere" in str(info.value)

    (tmp_path / "flat" / "good").mkdir(parents=True)
    with pytest.raises(SourceError, match="left"):
        PairedFolderSource(root=str(tmp_path / "flat"), name="real").scan(_context())

    root = tmp_path / "cams"
    _paired_tree(root)
    (root / "right" / "crack").mkdir()
    with pytest.raises(SourceError, match="crack") as info:
        PairedFolderSource(root=str(root), name="real").scan(_context())
    assert "no images" in str(info.value)

    root = tmp_path / "dup"
    image_file(root / "left" / "good" / "x.png")
    image_file(root / "right" / "scratch" / "x.png")
    with pytest.raises(SourceError, match="two classes"):
        PairedFolderSource(root=str(root), name="real").scan(_context())

    root = tmp_path / "twice"
    image_file(root / "left" / "good" / "x.png")
    image_file(root / "left" / "good" / "x.jpg")
    with pytest.raises(SourceError, match="same name"):
        PairedFolderSource(root=str(root), name="real").scan(_context())

    with pytest.raises(SourceError, match=r"weight"):
        PairedFolderSource(root=str(root), weight=-1)


def test_single_folder_with_masks(tmp_path: Path) -> None:
    root = tmp_path / "single"
    image_file(root / "good" / "g1.png")
    image_file(root / "good" / "g2.png")
    image_file(root / "crack" / "k1.bmp")
    (root / "good" / "notes.txt").write_text("ignored")
    mask_file(root / "masks" / "crack" / "k1.png")  # masks inside root: not a class
    source = SingleFolderSource(root=str(root), masks_root=str(root / "masks"), name="cam")
    records = source.scan(_context())
    assert [(r.label, r.item_id, r.view) for r in records] == [
        ("crack", "k1", "single"),
        ("good", "g1", "single"),
        ("good", "g2", "single"),
    ]
    assert records[0].mask_path == str(root / "masks" / "crack" / "k1.png")
    assert records[1].mask_path is None
    assert source.load(records[0])[1].sum() == 1

    # without masks_root, <root>/masks is the masks folder (not a class), as for paired cameras
    default = SingleFolderSource(root=str(root), name="cam").scan(_context())
    assert [(r.label, r.mask_path) for r in default] == [(r.label, r.mask_path) for r in records]

    with pytest.raises(FileNotFoundError, match=r"data\.sources\.cam\.masks_root"):
        SingleFolderSource(root=str(root), masks_root=str(tmp_path / "x"), name="cam").scan(None)
    with pytest.raises(SourceError, match="two classes"):
        image_file(root / "crack" / "g1.png")
        SingleFolderSource(root=str(root), masks_root=str(root / "masks"), name="cam").scan(None)


def test_renders_folder_synthetic_prefixes_item_ids(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    image_file(root / "good" / "0001.png")
    image_file(root / "scratch" / "0002.png")
    source = SingleFolderSource(root=str(root), synthetic=True, weight=0.5, name="renders")
    records = source.scan(_context())
    assert [r.item_id for r in records] == ["renders:0001", "renders:0002"]
    assert source.synthetic and source.weight == 0.5

    linked = SingleFolderSource(root=str(root), synthetic=True, item_id_prefix="", name="renders")
    assert [r.item_id for r in linked.scan(_context())] == ["0001", "0002"]

    with pytest.raises(SourceError, match="name"):
        SingleFolderSource(root=str(root), synthetic=True).scan(_context())


def _manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_manifest_relative_paths_and_optional_columns(tmp_path: Path) -> None:
    data = tmp_path / "lists"
    image_file(data / "imgs" / "a_left.png", 10)
    image_file(data / "imgs" / "a_right.png", 20)
    mask_file(data / "masks" / "a_right.png")
    absolute = image_file(tmp_path / "elsewhere" / "b.png", 30)
    csv_path = _manifest(
        data / "index.csv",
        "path,label,item_id,view,mask,comment\n"
        "imgs/a_left.png,scratch,a,left,,x\n"
        "imgs/a_right.png,scratch,a,right,masks/a_right.png,\n"
        f"{absolute},good,b,,,\n",
    )
    source = ManifestSource(csv_path=str(csv_path), name="list")
    records = source.scan(_context())
    assert [(r.item_id, r.label, r.view) for r in records] == [
        ("a", "scratch", "left"),
        ("a", "scratch", "right"),
        ("b", "good", "single"),
    ]
    assert records[0].path == str(data / "imgs" / "a_left.png")
    assert records[1].mask_path == str(data / "masks" / "a_right.png")
    image, mask = source.load(records[1])
    assert image[0, 0, 0] == 20 and mask.sum() == 1

    minimal = _manifest(data / "min.csv", "item_id,label,path\na,good,imgs/a_left.png\n")
    (record,) = ManifestSource(csv_path=str(minimal), name="m").scan(_context())
    assert record.view == "single" and record.mask_path is None


def test_manifest_errors(tmp_path: Path) -> None:
    image_file(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match=r"data\.sources\.m\.csv_path"):
        ManifestSource(csv_path=str(tmp_path / "none.csv"), name="m").scan(_context())

    bad = _manifest(tmp_path / "cols.csv", "path,class\na.png,good\n")
    with pytest.raises(SourceError, match=r"\['label', 'item_id'\]"):
        ManifestSource(csv_path=str(bad), name="m").scan(_context())

    bad = _manifest(tmp_path / "gone.csv", "path,label,item_id\na.png,good,a\nb.png,good,b\n")
    with pytest.raises(SourceError, match=r"line 3: image 'b.png' not found"):
        ManifestSource(csv_path=str(bad), name="m").scan(_context())

    bad = _manifest(tmp_path / "dup.csv", "path,label,item_id\na.png,good,a\n./a.png,good,a\n")
    with pytest.raises(SourceError, match=r"line 3: './a.png' is listed twice \(also line 2\)"):
        ManifestSource(csv_path=str(bad), name="m").scan(_context())

    bad = _manifest(tmp_path / "lab.csv", "path,label,item_id\na.png,dent,a\n")
    with pytest.raises(SourceError, match=r"label 'dent' is not in data\.sources\.m\.classes"):
        ManifestSource(csv_path=str(bad), classes=["good", "scratch"], name="m").scan(_context())

    bad = _manifest(tmp_path / "mask.csv", "path,label,item_id,mask\na.png,good,a,m.png\n")
    with pytest.raises(SourceError, match=r"mask 'm.png' not found"):
        ManifestSource(csv_path=str(bad), name="m").scan(_context())

    bad = _manifest(tmp_path / "blank.csv", "path,label,item_id\na.png,,a\n")
    with pytest.raises(SourceError, match=r"line 2: empty \['label'\]"):
        ManifestSource(csv_path=str(bad), name="m").scan(_context())

    bad = _manifest(tmp_path / "norows.csv", "path,label,item_id\n")
    with pytest.raises(SourceError, match="no rows"):
        ManifestSource(csv_path=str(bad), name="m").scan(_context())

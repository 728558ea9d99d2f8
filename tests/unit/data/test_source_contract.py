"""Every source class keeps the source contract (tests/helpers/source_contract.py): each class
below only builds its source on a tiny tree; the tests are the base class's."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from anomaly_vit.data.records import SourceContext
from anomaly_vit.data.sources import ManifestSource, PairedFolderSource, SingleFolderSource
from anomaly_vit.data.synthetic import (
    CompositeSource,
    CutPasteSource,
    GoodImagesSource,
    PaintedDefectSource,
    PerlinSource,
    TransplantSource,
)
from tests.helpers import image_file, mask_file
from tests.helpers.source_contract import SourceCase, SourceContract

SIDE = 8
EMPTY = SourceContext(records={}, split_of_item={}, sources={})


def paired(root: Path) -> Path:
    """Two items per class (good, scratch) in both views; scratch items have masks."""
    for view in ("left", "right"):
        for label, value in (("good", 60), ("scratch", 200)):
            for item in ("a", "b"):
                image_file(root / view / label / f"{label}_{item}.png", value)
                if label == "scratch":
                    mask_file(root / "masks" / view / label / f"{label}_{item}.png")
    return root


def _paired_context(root: Path, source_name: str = "real") -> SourceContext:
    base = PairedFolderSource(root=str(paired(root)), name=source_name)
    records = base.scan(EMPTY)
    split = {r.item_id: ("train" if r.item_id.endswith("a") else "val") for r in records}
    return SourceContext(records={source_name: records}, split_of_item=split,
                         sources={source_name: base})  # fmt: skip


class TestPairedFolderSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        root = paired(tmp_path / "cams")
        make = partial(PairedFolderSource, root=str(root), name="real")
        return SourceCase(make, EMPTY, {"good", "scratch"}, {"left", "right"}, SIDE, masked=True,
                          bad_inputs=[({"root": str(tmp_path / "nope")}, "data.sources.real.root"),
                                      ({"on_unpaired": "ask"}, "data.sources.real.on_unpaired")])  # fmt: skip


class TestSingleFolderSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        root = tmp_path / "photos"
        for label, value in (("good", 50), ("stain", 180)):
            image_file(root / label / f"{label}_1.png", value)
            image_file(root / label / f"{label}_2.jpg", value)
        mask_file(tmp_path / "masks" / "stain" / "stain_1.png")
        (tmp_path / "empty").mkdir()
        make = partial(SingleFolderSource, root=str(root), masks_root=str(tmp_path / "masks"),
                       name="renders", synthetic=True)  # fmt: skip
        return SourceCase(make, EMPTY, {"good", "stain"}, {"single"}, SIDE, masked=True,
                          bad_inputs=[({"root": str(tmp_path / "empty")}, "data.sources.renders.root"),
                                      ({"masks_root": str(tmp_path / "no")}, "data.sources.renders.masks_root")])  # fmt: skip


class TestManifestSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        image_file(tmp_path / "img" / "1.png", 40)
        image_file(tmp_path / "img" / "2.png", 220)
        mask_file(tmp_path / "img" / "2_mask.png")
        manifest = tmp_path / "list.csv"
        manifest.write_text(
            "path,label,item_id,view,mask\nimg/1.png,good,p1,,\nimg/2.png,dent,p2,top,img/2_mask.png\n"
        )
        empty = tmp_path / "empty.csv"
        empty.write_text("path,label,item_id\n")
        make = partial(ManifestSource, csv_path=str(manifest), name="listed")
        return SourceCase(make, EMPTY, {"good", "dent"}, {"single", "top"}, SIDE, masked=True,
                          bad_inputs=[({"csv_path": str(tmp_path / "no.csv")}, "data.sources.listed.csv_path"),
                                      ({"csv_path": str(empty)}, "empty.csv")])  # fmt: skip


class TestCompositeSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        context = _paired_context(tmp_path / "cams")
        make = partial(CompositeSource, base="real", modes=["mean", "absdiff"], name="composite")
        return SourceCase(make, context, {"good", "scratch"}, {"mean", "absdiff"}, SIDE, masked=True,
                          bad_inputs=[({"modes": ["blend"]}, "data.sources.composite.modes"),
                                      ({"base": "cams"}, "data.sources.composite.base")])  # fmt: skip


class TestPaintedDefectSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        context = _paired_context(tmp_path / "cams")
        make = partial(PaintedDefectSource, base="real", kinds=["scratch", "stain"],
                       placement={"area_range": [0.05, 0.2]}, name="painted")  # fmt: skip
        return SourceCase(make, context, {"scratch", "stain"}, {"painted"}, SIDE, masked=True,
                          bad_inputs=[({"kinds": ["dent"]}, "data.sources.painted.kinds"),
                                      ({"variants_per_image": 0}, "data.sources.painted.variants_per_image")])  # fmt: skip


class TestTransplantSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        context = _paired_context(tmp_path / "cams")
        make = partial(TransplantSource, base="real", name="transplant")
        return SourceCase(make, context, {"scratch"}, {"transplant"}, SIDE, masked=True,
                          bad_inputs=[({"placement": "mirror"}, "data.sources.transplant.placement"),
                                      ({"feather_px": -1}, "data.sources.transplant.feather_px")])  # fmt: skip


class TestCutPasteSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        context = _paired_context(tmp_path / "cams")
        make = partial(CutPasteSource, base="real", area_range=[0.1, 0.3], label="defect",
                       name="cutpaste")  # fmt: skip
        return SourceCase(make, context, {"defect"}, {"cutpaste"}, SIDE, masked=True,
                          bad_inputs=[({"aspect_range": [2, 1]}, "data.sources.cutpaste.aspect_range"),
                                      ({"angle": 3}, "data.sources.cutpaste.angle")])  # fmt: skip


class TestPerlinSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        context = _paired_context(tmp_path / "cams")
        make = partial(PerlinSource, base="real", area_range=[0.1, 0.3], name="perlin")
        return SourceCase(make, context, {"perlin"}, {"perlin"}, SIDE, masked=True,
                          bad_inputs=[({"texture": "dtd"}, "data.sources.perlin.texture"),
                                      ({"opacity": [0.5, 2]}, "data.sources.perlin.opacity")])  # fmt: skip


class TestGoodImagesSource(SourceContract):
    @pytest.fixture
    def case(self, tmp_path):
        context = _paired_context(tmp_path / "cams")
        make = partial(GoodImagesSource, base="real", name="good")
        return SourceCase(make, context, {"good"}, {"left", "right"}, SIDE, masked=False,
                          bad_inputs=[({"good_label": "ok"}, "data.sources.good.good_label")])  # fmt: skip

"""Synthetic sources derived from real ones: fused left/right composites, painted defects,
CutPaste patches, Perlin-noise textures and transplanted real defects."""

from anomaly_vit.data.synthetic.composites import CompositeSource
from anomaly_vit.data.synthetic.cutpaste import CutPasteSource
from anomaly_vit.data.synthetic.derived import DerivedSource
from anomaly_vit.data.synthetic.good_images import GoodImagesSource
from anomaly_vit.data.synthetic.painted import PaintedDefectSource
from anomaly_vit.data.synthetic.perlin import PerlinSource
from anomaly_vit.data.synthetic.transplant import TransplantSource

__all__ = [
    "CompositeSource",
    "CutPasteSource",
    "DerivedSource",
    "GoodImagesSource",
    "PaintedDefectSource",
    "PerlinSource",
    "TransplantSource",
]

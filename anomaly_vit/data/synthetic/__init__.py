"""Synthetic sources derived from real ones: fused left/right composites and painted defects."""

from anomaly_vit.data.synthetic.composites import CompositeSource
from anomaly_vit.data.synthetic.derived import DerivedSource
from anomaly_vit.data.synthetic.painted import PaintedDefectSource

__all__ = ["CompositeSource", "DerivedSource", "PaintedDefectSource"]

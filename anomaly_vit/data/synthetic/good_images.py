"""`GoodImagesSource`: the good training images of a base source, unchanged.

For a stage that sees no real defect (`experiment=synthetic_pretrain`): with the base's own weight
at 0, this source brings the good class (the bases the synthetic defects are drawn on) and the
synthetic sources bring every defect. Only train-split items are listed, so it never adds a
val or test image; records keep the base's item, view, label and files.
"""

from __future__ import annotations

import dataclasses

from anomaly_vit.data.records import Record, SourceContext
from anomaly_vit.data.sources.base import SourceError
from anomaly_vit.data.synthetic.derived import DerivedSource, Loaded
from anomaly_vit.data.synthetic.painted import TRAIN_SPLIT


class GoodImagesSource(DerivedSource):
    """The `good_label` train records of `base`, as records of this source."""

    def __init__(
        self,
        base: str,
        good_label: str = "good",
        name: str = "",
        synthetic: bool = False,
        weight: float = 1.0,
    ) -> None:
        super().__init__(base, name=name, synthetic=synthetic, weight=weight)
        self.good_label = str(good_label)

    def scan(self, context: SourceContext) -> list[Record]:
        records = [
            dataclasses.replace(r, source=self.name, parents=(r,))
            for r in self.base_records(context)
            if r.label == self.good_label and context.split_of_item.get(r.item_id) == TRAIN_SPLIT
        ]
        if not records:
            raise SourceError(
                f"source '{self.base}' ({self.key('base')}) has no '{self.good_label}' images in "
                f"the train split; check {self.key('good_label')}"
            )
        return records

    def load(self, record: Record) -> Loaded:
        return self.load_parents(record.parents)[0]

"""`DefectOnGoodSource`: the base of sources that put one made-up defect on a good training image.

Parents are the `good_label` records of `base` whose item is in the train split (never val or
test, so nothing leaks); each parent yields `variants_per_image` records. A record renders from
its own generator, seeded (stable hash) by the context seed, the source's view, the item, the
parent's view and the variant: reproducible per record and seed, whatever order records load in.
Pixels change only where the returned mask is set: ``out = image + alpha * (target - image)``
with ``alpha`` 0 outside the mask (a feathered edge is cut at `alpha_cutoff`, inside the mask).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from anomaly_vit.data.image_io import UINT8_MAX
from anomaly_vit.data.records import Record, SourceContext
from anomaly_vit.data.sources.base import SourceError
from anomaly_vit.data.synthetic.composites import union_mask
from anomaly_vit.data.synthetic.defect_kinds import from_config
from anomaly_vit.data.synthetic.derived import DerivedSource, Loaded
from anomaly_vit.data.synthetic.painted import TRAIN_SPLIT, gaussian_blur, stable_seed


def blend(image: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``image + alpha * (target - image)`` per channel, rounded half up to uint8."""
    base = image.astype(np.float64)
    out = base + alpha[..., None] * (np.asarray(target, np.float64) - base)
    return np.clip(np.floor(out + 0.5), 0, UINT8_MAX).astype(np.uint8)


def feather(alpha: np.ndarray, sigma_px: float, cutoff: float) -> np.ndarray:
    """Blur a coverage map by `sigma_px`, then zero the values below `cutoff` (soft edges, and
    a mask ``alpha > 0`` that holds every changed pixel)."""
    soft = gaussian_blur(alpha.astype(np.float64), sigma_px)
    soft[soft < cutoff] = 0.0
    return soft


class DefectOnGoodSource(DerivedSource):
    """One record per (good train image of `base`, variant); subclasses `render` the defect.

    A record's label is `label` when given, else `default_label(record)` (the subclass's own
    name, or for transplants the donor's class). `settings` are the subclass's settings
    dataclass (`Settings`), built from the remaining config keys and checked by name.
    """

    VIEW = ""  # the records' view, e.g. "cutpaste"
    Settings: type = object

    def __init__(
        self,
        base: str,
        variants_per_image: int = 1,
        label: str | None = None,
        good_label: str = "good",
        name: str = "",
        synthetic: bool = True,
        weight: float = 1.0,
        **settings: Any,
    ) -> None:
        super().__init__(base, name=name, synthetic=synthetic, weight=weight)
        if int(variants_per_image) < 1:
            raise SourceError(
                f"{self.key('variants_per_image')} = {variants_per_image}: must be an integer >= 1"
            )
        self.variants_per_image = int(variants_per_image)
        self.one_label = None if label is None else str(label)
        self.good_label = str(good_label)
        self.settings = from_config(self.Settings, settings, self.key)
        self._seed = 0
        self._paths: set[str] = set()  # records by description (a binary task relabels them)

    def train_records(self, context: SourceContext, good: bool) -> list[Record]:
        """Records of `base` in the train split: the good ones, or the defective ones."""
        return [
            r
            for r in context.records[self.base]
            if (r.label == self.good_label) == good
            and context.split_of_item.get(r.item_id) == TRAIN_SPLIT
        ]

    def scan(self, context: SourceContext) -> list[Record]:
        self.base_records(context)
        self._seed = context.seed
        parents = self.train_records(context, good=True)
        if not parents:
            raise SourceError(
                f"{self.VIEW} defects need '{self.good_label}' images in the train split, and "
                f"source '{self.base}' ({self.key('base')}) has none; check "
                f"{self.key('good_label')} and the split, or set {self.key('weight')} to 0"
            )
        extra = self.extra_parents(context, parents)
        records = []
        for parent in parents:
            for variant in range(self.variants_per_image):
                others = extra(parent, variant) if extra else ()
                description = f"{parent.path}|{self.VIEW}:{variant}" + "".join(
                    f"|{o.path}" for o in others
                )
                record = Record(
                    source=self.name,
                    item_id=parent.item_id,
                    label="",
                    view=self.VIEW,
                    path=description,
                    mask_path=description,
                    parents=(parent, *others),
                    variant=variant,
                )
                label = self.one_label or self.default_label(record)
                records.append(dataclasses.replace(record, label=label))
        self._paths = {r.path for r in records}
        return records

    def extra_parents(self, context: SourceContext, parents: list[Record]):
        """None, or a function (parent, variant) -> more parent records (donors, textures)."""
        return None

    def default_label(self, record: Record) -> str:
        return self.VIEW

    def rng(self, record: Record, purpose: str = "render") -> np.random.Generator:
        """The record's own generator (never the global RNG)."""
        parent = record.parents[0]
        return np.random.default_rng(
            stable_seed(self._seed, self.VIEW, purpose, record.item_id, parent.view, record.variant)
        )

    def pick(self, pool: list[Record], parent: Record, variant: int) -> Record:
        """One member of `pool`, chosen reproducibly for (parent, variant)."""
        seed = stable_seed(self._seed, self.VIEW, "pick", parent.item_id, parent.view, variant)
        return pool[int(np.random.default_rng(seed).integers(len(pool)))]

    def load(self, record: Record) -> Loaded:
        """Render the record's defect onto its first parent; returns (image, mask)."""
        if record.path not in self._paths:
            raise RuntimeError(
                f"source '{self.name}': record not from this source's scan(): {record}"
            )
        loaded = self.load_parents(record.parents)
        image, alpha = self.render(loaded, self.rng(record))
        if not (alpha > 0).any():
            raise SourceError(
                f"source '{self.name}': the {self.VIEW} defect of '{record.parents[0].path}' "
                f"covers no pixel; widen its size settings ({self.key('area_range')})"
            )
        return image, union_mask([loaded[0][1], alpha > 0])

    def render(self, loaded: tuple[Loaded, ...], rng: np.random.Generator):
        """(new uint8 image, float alpha HxW: 0 outside the defect) from the parents' pixels."""
        raise NotImplementedError

"""`DerivedSource`: a synthetic source whose records are made from another source's records.

A derived record keeps its parents' `item_id`, so every variant of an item lands in the
item's split. Pixels of the parents load through the base source, one set of parents at a
time (a derived source yields several records per parent set, one after the other).
"""

from __future__ import annotations

import numpy as np

from anomaly_vit.data.records import Record, Source, SourceContext
from anomaly_vit.data.sources.base import BaseSource, SourceError

Loaded = tuple[np.ndarray, np.ndarray | None]  # (uint8 HxWx3 image, bool HxW mask or None)


class DerivedSource(BaseSource):
    """Records built from the records of source `base` (named in `data.sources`)."""

    def __init__(
        self, base: str, name: str = "", synthetic: bool = True, weight: float = 1.0
    ) -> None:
        super().__init__(name=name, synthetic=synthetic, weight=weight)
        self.base = str(base)
        self._base_source: Source | None = None
        self._cache: tuple[tuple[Record, ...], tuple[Loaded, ...]] | None = None

    def base_records(self, context: SourceContext) -> list[Record]:
        """Bind to the scanned base source and return its records (start of every `scan`)."""
        if self.base not in context.records or self.base not in context.sources:
            raise SourceError(
                f"{self.key('base')} = '{self.base}' is not a scanned source (known: "
                f"{sorted(context.records)}); name an existing source listed before this one"
            )
        self._base_source = context.sources[self.base]
        self._cache = None
        return context.records[self.base]

    def load_parents(self, parents: tuple[Record, ...]) -> tuple[Loaded, ...]:
        """Decode `parents` through the base source, reusing the last decoded set."""
        if self._base_source is None:
            raise RuntimeError(f"source '{self.name}': call scan() before load()")
        if self._cache is None or self._cache[0] != parents:
            self._cache = (parents, tuple(self._base_source.load(p) for p in parents))
        return self._cache[1]

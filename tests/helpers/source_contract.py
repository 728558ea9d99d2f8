"""The contract every image source keeps, as one test base (anomalib's pattern): a concrete test
class inherits `SourceContract` and only supplies the `case` fixture; the tests live here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from anomaly_vit.data.records import Record, SourceContext


@dataclass
class SourceCase:
    """How to build the source, the context to scan it in and what its records must hold."""

    make: Callable[..., object]  # make(**changes): the source, its settings changed by `changes`
    context: SourceContext
    labels: set[str]  # the classes its records have
    views: set[str]  # the views its records have
    side: int  # images decode to side x side
    masked: bool  # some records have a pixel mask
    # (settings changed to bad ones, the config key its one-line error must name)
    bad_inputs: list[tuple[dict[str, object], str]] = field(default_factory=list)


class SourceContract:
    """Tests every source class must pass (the class name keeps pytest from collecting it)."""

    @pytest.fixture
    def case(self, tmp_path) -> SourceCase:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _records(self, case: SourceCase) -> list[Record]:
        records = case.make().scan(case.context)
        assert records, "a source with readable files yields records"
        return records

    def test_scan_gives_records_with_item_ids_labels_and_views(self, case: SourceCase):
        records = self._records(case)
        assert all(isinstance(r, Record) for r in records)
        assert {r.source for r in records} == {case.make().name}
        assert all(r.item_id and isinstance(r.item_id, str) for r in records)
        assert {r.label for r in records} == case.labels
        assert {r.view for r in records} == case.views
        assert len(set(records)) == len(records), "no record twice"
        assert records == case.make().scan(case.context), "scanning is deterministic"

    def test_load_gives_uint8_rgb_of_the_right_size(self, case: SourceCase):
        source = case.make()
        for record in source.scan(case.context):
            image, mask = source.load(record)
            assert isinstance(image, np.ndarray) and image.dtype == np.uint8, record
            assert image.shape == (case.side, case.side, 3), (record, image.shape)
            if mask is not None:
                assert mask.dtype == bool and mask.shape == image.shape[:2], record

    def test_masks_come_with_the_records_that_name_one(self, case: SourceCase):
        masked, source = 0, case.make()
        for record in source.scan(case.context):
            _, mask = source.load(record)
            assert (mask is not None) == (record.mask_path is not None), record
            if mask is not None:
                masked += 1
                assert mask.any() and not mask.all(), f"a mask marks part of the image: {record}"
        assert (masked > 0) == case.masked

    def test_bad_input_is_one_line_naming_the_key(self, case: SourceCase):
        name = case.make().name
        # a negative mix weight is refused by every source; each case adds its own bad inputs
        for changes, key in [({"weight": -1.0}, f"data.sources.{name}.weight"), *case.bad_inputs]:
            with pytest.raises((ValueError, FileNotFoundError)) as info:
                case.make(**changes).scan(case.context)
            message = str(info.value)
            assert "\n" not in message and key in message, (changes, message)

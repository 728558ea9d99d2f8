"""`python -m anomaly_vit.predict` on a folder of mixed sizes and modes with a corrupted file."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.cli.predict import COLUMNS, predict
from anomaly_vit.deploy import Inferencer
from tests.helpers import compose_config
from tests.helpers.deploy import photo_folder


@pytest.fixture(scope="module")
def predicted(smoke_run_tokens, token_bundle, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    photos = photo_folder(smoke_run_tokens, tmp / "photos" / "line3", classes=("crack", "good"))
    (tmp / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp / "out"
    cfg = compose_config(
        "predict",
        [f"bundle={token_bundle}", f"input={tmp / 'photos'}", "threshold=0.0", "batch_size=3"],
        out,
    )
    summary = predict(cfg)
    with (out / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with (out / "skipped.csv").open(newline="") as handle:
        skipped = list(csv.DictReader(handle))
    return photos, out, summary, rows, skipped


def test_every_readable_photo_gets_a_row_and_the_broken_one_is_listed(predicted):
    photos, _, summary, rows, skipped = predicted
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in photos)
    assert [s["path"].rsplit("/", 1)[-1] for s in skipped] == ["broken.png"]
    assert "broken.png" in skipped[0]["error"] and "re-export" in skipped[0]["error"]
    assert (summary["n_images"], summary["n_skipped"]) == (len(photos), 1)
    assert list(rows[0]) == list(COLUMNS)


def test_masks_and_overlays_are_at_each_photos_resolution(predicted, token_bundle):
    photos, out, summary, rows, _ = predicted
    expected = {str(p): p for p in photos}
    reference = {p.path: p for p in Inferencer(token_bundle, threshold=0.0).predict(photos)}
    for row in rows:
        size = Image.open(expected[row["path"]]).size
        mask = np.asarray(Image.open(out / row["mask"])) > 0
        assert Image.open(out / row["overlay"]).size == size == mask.shape[::-1]
        assert row["mask"] == f"masks/line3/{expected[row['path']].stem}.png"
        assert mask.sum() == int(row["mask_area"]) == reference[row["path"]].mask_area
        assert (mask == reference[row["path"]].mask).all()
    # threshold=0 flags every photo: the decision, class and policy say so
    assert {(r["decision"], r["class"], r["policy"]) for r in rows} == {
        ("defect", "defect", "manual")
    }
    assert summary["n_defect"] == len(rows)


def test_boxes_bound_the_mask_regions(predicted):
    _, out, _, rows, _ = predicted
    for row in rows:
        mask = np.asarray(Image.open(out / row["mask"])) > 0
        boxes = [tuple(map(int, b.split())) for b in row["boxes"].split(";") if b]
        covered = np.zeros_like(mask)
        for x0, y0, x1, y1 in boxes:
            covered[y0 : y1 + 1, x0 : x1 + 1] = True
            assert mask[y0 : y1 + 1, x0 : x1 + 1].any()
        assert (covered | ~mask).all()  # every mask pixel inside a box


def test_the_inferencer_streams_a_few_photos_at_a_time(token_bundle):
    """Thousands of photos never sit in memory: the first prediction comes after one batch."""
    pulled = []

    def photos():
        for index in range(1000):
            pulled.append(index)
            yield np.full((16, 24, 3), index % 255, np.uint8)

    stream = Inferencer(token_bundle, batch_size=4).iter_predict(photos())
    next(stream)
    assert len(pulled) == 4


def test_a_good_verdict_has_no_mask_and_a_defect_one_keeps_the_map_above_the_pixel_threshold(
    token_bundle, predicted
):
    photos = predicted[0]
    none_flagged = Inferencer(token_bundle, threshold=2.0).predict(photos)
    all_flagged = Inferencer(token_bundle, threshold=0.0).predict(photos)
    pixel = Inferencer(token_bundle).pixel_threshold
    for good, defect in zip(none_flagged, all_flagged, strict=True):
        assert (good.is_defect, good.label, good.mask_area, good.boxes) == (False, "good", 0, [])
        assert (defect.mask == (defect.map >= pixel)).all()
    assert sum(p.mask_area for p in all_flagged) > 0

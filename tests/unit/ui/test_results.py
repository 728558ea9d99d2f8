"""The page's table of photos, its CSV and the verdict list, at the slider's threshold."""

from __future__ import annotations

import csv

from anomaly_vit.ui.results import (
    TABLE_COLUMNS,
    PhotoResult,
    Verdicts,
    table_rows,
    verdicts_html,
    write_csv,
)

VERDICTS = Verdicts(good="good", defect="defect")


def _results() -> list[PhotoResult]:
    return [
        PhotoResult("a.png", "/x/a.png", score=0.2, width=64, height=48, mask_area=5, regions=1),
        PhotoResult("b.png", "/x/b.png", problem="'b.png': file is empty (0 bytes)"),
        PhotoResult("c.png", "/x/c.png", score=0.9, width=64, height=48, mask_area=30, regions=2),
        PhotoResult("d.png", "/x/d.png", score=0.5, width=64, height=48, mask_area=7, regions=1),
    ]


def test_table_ranks_by_score_and_calls_verdicts_at_the_threshold():
    rows = table_rows(_results(), 0.5, VERDICTS)
    assert [r[0] for r in rows] == ["c.png", "d.png", "a.png", "b.png"]
    assert [r[1] for r in rows] == ["defect", "defect", "good", "unreadable"]
    assert rows[0][TABLE_COLUMNS.index("margin")] == 0.4
    # a good photo shows no mask; the unreadable one says why
    assert [r[TABLE_COLUMNS.index("mask_area_px")] for r in rows] == [30, 7, 0, 0]
    assert rows[3][TABLE_COLUMNS.index("problem")] == "'b.png': file is empty (0 bytes)"
    moved = table_rows(_results(), 0.95, VERDICTS)
    assert [r[1] for r in moved] == ["good", "good", "good", "unreadable"]


def test_csv_holds_the_table(tmp_path):
    rows = table_rows(_results(), 0.5, VERDICTS)
    path = write_csv(rows, tmp_path / "out" / "inspection.csv")
    with path.open(newline="") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == list(TABLE_COLUMNS)
    assert [(r["photo"], r["verdict"], r["defect_score"]) for r in read] == [
        ("c.png", "defect", "0.9"),
        ("d.png", "defect", "0.5"),
        ("a.png", "good", "0.2"),
        ("b.png", "unreadable", ""),
    ]


def test_verdict_list_keeps_upload_order_and_escapes_names():
    results = _results() + [PhotoResult('<x>".png', "/x/y", score=0.7)]
    html = verdicts_html(results, 0.5, VERDICTS)
    assert html.index('data-photo="a.png"') < html.index('data-photo="b.png"')
    assert 'data-photo="c.png" data-verdict="defect" data-score="0.900000"' in html
    assert 'data-photo="&lt;x&gt;&quot;.png"' in html
    assert "score 0.2000 &lt; threshold 0.5000" in html
    assert "score 0.5000 ≥ threshold 0.5000" in html

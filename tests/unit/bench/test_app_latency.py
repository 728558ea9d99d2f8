"""The bench row of the operator page's latency: the median over HTTP against the goal."""

from __future__ import annotations

from anomaly_vit.bench.app_latency import latency_row

RESULT = {
    "photo": "640 x 640 px PNG",
    "model_input": [208, 208],
    "http_ms": [120.0, 400.0, 150.0],
    "handler_ms": [40.0, 42.0],
    "inferencer_ms": [20.0, 22.0],
    "load_average_before": (1.5, 1.0, 1.0),
    "load_average_after": (1.7, 1.0, 1.0),
}


def test_row_is_the_median_over_http_against_the_goal():
    row = latency_row(RESULT, 300)
    assert row.value == 150.0 and row.passed is True
    assert latency_row(RESULT, 140).passed is False
    assert "handler 41 ms, inferencer 21 ms" in row.note and "load 1.50 -> 1.70" in row.note
    assert "p95 375 ms" in row.note  # numpy's linear interpolation of 120, 150, 400


def test_row_without_a_bundle_says_how_to_give_one():
    row = latency_row(None, 300, "give app_latency.bundle=<export dir>")
    assert row.status == "skipped" and row.value is None and "app_latency.bundle" in row.note

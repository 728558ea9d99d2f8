"""The page's markup: the confusion counts and the ROC point."""

from __future__ import annotations

from anomaly_vit.ui.counts import confusion_at
from anomaly_vit.ui.render import confusion_html, roc_svg


def test_counts_and_roc_point_in_the_markup():
    counts = confusion_at([0.9, 0.6, 0.3, 0.1], [True, False, True, False], 0.5)
    html = confusion_html(counts, 4, problems=1)
    for key, value in {"tp": 1, "fp": 1, "tn": 1, "fn": 1}.items():
        assert f'id="count-{key}" data-count="{value}"' in html
    assert "1 photo(s) could not be read" in html
    svg = roc_svg([(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)], counts, size_px=128)
    # recall 0.5, false alarms 0.5: the middle of the 72 px plot inside a 28 px margin
    assert '<circle id="roc-point" cx="64.0" cy="64.0"' in svg

"""The page's markup: the verdict line, the confusion counts, the ROC curve (inline SVG).

The pictures (the mask outlined, the map overlaid) are drawn by `anomaly_vit.deploy.draw`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from anomaly_vit.ui.counts import Confusion


def verdict_text(score: float, threshold: float, label: str, is_defect: bool) -> str:
    """One line: the verdict and the score against the threshold."""
    sign = "≥" if is_defect else "<"
    return f"{label.upper()}: defect score {score:.4f} {sign} threshold {threshold:.4f}"


def confusion_html(counts: Confusion | None, n_labelled: int, problems: int) -> str:
    """The confusion counts of the labelled set at the slider's threshold."""
    if counts is None:
        return "<p>No labelled set scored yet.</p>"
    cells = [("tp", "defects caught"), ("fn", "escapes"), ("fp", "false alarms")]
    cells.append(("tn", "good passed"))
    rows = "".join(
        f'<tr><td>{words}</td><td id="count-{key}" data-count="{getattr(counts, key)}">'
        f"{getattr(counts, key)}</td></tr>"
        for key, words in cells
    )
    rates = (
        f"recall {_percent(counts.recall)}, false alarms {_percent(counts.false_alarm_rate)} "
        f"at threshold {counts.threshold:.4f}"
    )
    skipped = f"; {problems} photo(s) could not be read" if problems else ""
    return (
        f'<div id="confusion"><p>{n_labelled} labelled photos{skipped}</p>'
        f"<table>{rows}</table><p>{rates}</p></div>"
    )


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f} %"


def roc_svg(points: Sequence[tuple[float, float]], current: Confusion | None, size_px: int) -> str:
    """The labelled set's ROC curve with the current threshold's point, as inline SVG."""
    if not points:
        return ""
    pad = 28
    side = size_px - 2 * pad

    def xy(fpr: float, tpr: float) -> str:
        return f"{pad + fpr * side:.1f},{pad + (1 - tpr) * side:.1f}"

    path = " ".join(xy(x, y) for x, y in points)
    dot = ""
    if current is not None and current.recall == current.recall:
        fpr = (
            current.false_alarm_rate if current.false_alarm_rate == current.false_alarm_rate else 0
        )
        cx, cy = xy(fpr, current.recall).split(",")
        dot = f'<circle id="roc-point" cx="{cx}" cy="{cy}" r="5" fill="#d62728"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size_px}" height="{size_px}" '
        f'role="img" aria-label="ROC curve">'
        f'<rect x="{pad}" y="{pad}" width="{side}" height="{side}" fill="none" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad + side}" x2="{pad + side}" y2="{pad}" stroke="#ccc" '
        f'stroke-dasharray="4"/>'
        f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>{dot}'
        f'<text x="{pad + side / 2}" y="{size_px - 6}" text-anchor="middle" font-size="11">'
        f"false alarm rate</text>"
        f'<text x="10" y="{pad + side / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 10 {pad + side / 2})">recall</text></svg>'
    )


def escape(text: str) -> str:
    return html.escape(text, quote=True)

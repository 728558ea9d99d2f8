"""What the page knows about each inspected photo, its table and the table's CSV.

The verdict is recomputed at whatever threshold the slider holds (a photo scoring at least the
threshold is a defect), so moving the slider never runs the model again.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anomaly_vit.ui.render import escape

TABLE_COLUMNS = (
    "photo",
    "verdict",
    "defect_score",
    "threshold",
    "margin",
    "mask_area_px",
    "regions",
    "width",
    "height",
    "problem",
)


@dataclass
class PhotoResult:
    """One photo's answer; `score` is None when the photo could not be inspected (`problem`).
    `mask_area`/`regions` describe the mask shown when the photo is called a defect."""

    name: str
    path: str
    label: str | None = None
    score: float | None = None
    width: int = 0
    height: int = 0
    mask_area: int = 0
    regions: int = 0
    problem: str | None = None

    def is_defect(self, threshold: float) -> bool | None:
        return None if self.score is None else self.score >= threshold


@dataclass(frozen=True)
class Verdicts:
    """The words of the two verdicts (the bundle's good and defect class names)."""

    good: str
    defect: str

    def of(self, result: PhotoResult, threshold: float) -> str:
        called = result.is_defect(threshold)
        return "unreadable" if called is None else self.defect if called else self.good


def ranked(results: Sequence[PhotoResult]) -> list[PhotoResult]:
    """Highest defect score first; unreadable photos last, in their order."""
    scored = sorted((r for r in results if r.score is not None), key=lambda r: -r.score)
    return scored + [r for r in results if r.score is None]


def table_rows(
    results: Sequence[PhotoResult], threshold: float, verdicts: Verdicts
) -> list[list[object]]:
    """One row per photo (columns `TABLE_COLUMNS`), highest score first."""
    rows = []
    for r in ranked(results):
        called = r.is_defect(threshold)
        rows.append(
            [
                r.name,
                verdicts.of(r, threshold),
                None if r.score is None else round(r.score, 6),
                round(threshold, 6),
                None if r.score is None else round(r.score - threshold, 6),
                r.mask_area if called else 0,
                r.regions if called else 0,
                r.width or None,
                r.height or None,
                r.problem or "",
            ]
        )
    return rows


def write_csv(rows: Sequence[Sequence[object]], path: Path) -> Path:
    """The table as CSV (header `TABLE_COLUMNS`); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_COLUMNS)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    return path


def verdicts_html(results: Sequence[PhotoResult], threshold: float, verdicts: Verdicts) -> str:
    """Per photo, in upload order: the verdict and the score against the threshold."""
    if not results:
        return ""
    items = []
    for r in results:
        verdict = verdicts.of(r, threshold)
        if r.score is None:
            detail = escape(r.problem or "")
            score = ""
        else:
            sign = "≥" if r.score >= threshold else "<"
            detail = escape(f"score {r.score:.4f} {sign} threshold {threshold:.4f}")
            score = f' data-score="{r.score:.6f}"'
        colour = {verdicts.defect: "#c62828", verdicts.good: "#2e7d32"}.get(verdict, "#6d6d6d")
        items.append(
            f'<li class="verdict" data-photo="{escape(r.name)}" data-verdict="{escape(verdict)}"'
            f'{score}><b style="color:{colour}">{escape(verdict.upper())}</b> '
            f"{escape(r.name)}: {detail}</li>"
        )
    return f'<ul id="verdict-list" style="list-style:none;padding:0">{"".join(items)}</ul>'

"""The benchmark table: rows with a value, a target and a verdict, as text, markdown and JSON."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# how a row's value relates to the truth: measured, a bound (the true value is at least / at
# most it), or no number (not reached, skipped)
STATUSES = ("measured", "lower_bound", "upper_bound", "not_reached", "skipped")
BOUND_SIGN = {"measured": "", "lower_bound": "≥ ", "upper_bound": "≤ "}


def median(values: Iterable[float]) -> float:
    """Median of the finite values; NaN when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.median(finite) if finite else math.nan


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when either is missing or the denominator is not > 0."""
    if numerator is None or denominator is None:
        return math.nan
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return math.nan
    return numerator / denominator


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Row:
    """One line of the table. `value` is in `unit`; `target` is (comparison, number) or None."""

    number: str
    key: str
    title: str
    value: float | None
    unit: str = ""
    target: tuple[str, float] | None = None
    status: str = "measured"
    shown: str = ""  # the value as shown (units, bounds); derived from value when empty
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"row {self.key}: status {self.status!r} is not one of {STATUSES}")
        if self.value is not None and not finite(self.value) and self.status in BOUND_SIGN:
            self.status, self.value = "not_reached", None

    @property
    def passed(self) -> bool | None:
        """True/False against the target; None without a target or a number to judge."""
        if self.target is None or self.value is None or self.status in ("not_reached", "skipped"):
            return None
        op, goal = self.target
        if op not in (">=", "<="):
            raise ValueError(f"row {self.key}: unknown comparison {op!r}")
        meets = self.value >= goal if op == ">=" else self.value <= goal
        if self.status == "measured":
            return meets
        # a bound decides only when it lies on the far side: "the ratio is >= 12" meets ">= 10",
        # "the ratio is >= 4" tells nothing about it
        helps = (self.status == "lower_bound") == (op == ">=")
        if helps:
            return True if meets else None
        return False if not meets else None

    def value_text(self) -> str:
        if self.shown:
            return self.shown
        if self.status == "skipped":
            return "skipped"
        if self.value is None:
            return "not reached"
        return f"{BOUND_SIGN.get(self.status, '')}{format_value(self.value, self.unit)}"

    def target_text(self) -> str:
        if self.target is None:
            return "—"
        op, goal = self.target
        return f"{'≥' if op == '>=' else '≤'} {format_value(goal, self.unit)}"

    def verdict(self) -> str:
        return {True: "yes", False: "NO", None: "—"}[self.passed]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = (
            None if self.target is None else {"op": self.target[0], "value": self.target[1]}
        )
        data["passed"] = self.passed
        data["shown"] = self.value_text()
        return _json_safe(data)


def format_value(value: float, unit: str) -> str:
    """A number with its unit: `share` as a percentage, `x` as a ratio, bytes as MiB/GiB."""
    if unit == "share":
        return f"{100 * value:.1f} %"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "bytes":
        return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.3g} {unit}".strip()


COLUMNS = ("#", "benchmark", "value", "target", "ok", "how it was measured")


def table_cells(rows: Sequence[Row]) -> list[list[str]]:
    return [[r.number, r.title, r.value_text(), r.target_text(), r.verdict(), r.note] for r in rows]


def markdown_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table (pipes in cells escaped)."""

    def line(items: Sequence[str]) -> str:
        return (
            "| " + " | ".join(str(i).replace("|", "\\|").replace("\n", " ") for i in items) + " |"
        )

    return "\n".join([line(header), line(["---"] * len(header)), *(line(row) for row in cells)])


def plain_table(header: Sequence[str], cells: Sequence[Sequence[str]], max_width: int = 60) -> str:
    """A fixed-width text table; long cells are cut to `max_width` characters."""
    rows = [
        [str(c) if len(str(c)) <= max_width else str(c)[: max_width - 1] + "…" for c in row]
        for row in [list(header), *cells]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def print_table(rows: Sequence[Row], title: str) -> None:
    """Print the table with rich when it is installed, else as plain text."""
    cells = table_cells(rows)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency, but keep the bench usable
        print(title)
        print(plain_table(COLUMNS, cells))
        return
    table = Table(title=title, show_lines=False)
    for name in COLUMNS:
        table.add_column(name, overflow="fold", max_width=70 if name == COLUMNS[-1] else None)
    for row, cell in zip(rows, cells, strict=True):
        style = {True: "green", False: "red"}.get(row.passed)
        table.add_row(*cell[:4], f"[{style}]{cell[4]}[/]" if style else cell[4], cell[5])
    Console(width=200).print(table)


def render_markdown(
    rows: Sequence[Row], meta: dict[str, Any], sections: Sequence[tuple[str, str]] = ()
) -> str:
    """The report: the table, then `sections` (title, markdown body), then the settings."""
    parts = [f"# anomaly-vit benchmarks ({meta.get('mode', '?')} mode)", ""]
    parts.append(
        f"{meta.get('started', '')}; took {meta.get('wall_seconds', math.nan):.0f} s; "
        f"{meta.get('machine', '')}"
    )
    parts += ["", markdown_table(COLUMNS, table_cells(rows)), ""]
    for title, body in sections:
        parts += [f"## {title}", "", body.rstrip(), ""]
    parts += [
        "## Settings",
        "",
        "```json",
        json.dumps(_json_safe(meta.get("settings", {})), indent=2),
        "```",
        "",
    ]
    return "\n".join(parts)


def write_report(
    out_dir: Path,
    rows: Sequence[Row],
    meta: dict[str, Any],
    sections: Sequence[tuple[str, str]] = (),
    details: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write bench.md and bench.json into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / "bench.md", out_dir / "bench.json"
    md_path.write_text(render_markdown(rows, meta, sections))
    payload = {"meta": meta, "rows": [row.as_dict() for row in rows], "details": details or {}}
    json_path.write_text(json.dumps(_json_safe(payload), indent=2, default=str))
    return md_path, json_path


def _json_safe(value: Any) -> Any:
    """NaN/inf become None; tuples become lists; so any JSON reader accepts the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value

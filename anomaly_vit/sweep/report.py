"""Turn a multirun folder into one answer: sweep_summary.csv, sweep_summary.md and sweep.png.

    python -m anomaly_vit.sweep.report outputs/multiruns/<time>      (or: avit-sweep-report ...)

Each job folder holds `.hydra/overrides.yaml` (what the job was given) and, when it finished,
`summary.json` (its metrics). The swept keys are the override keys whose values differ between
jobs; seeds are averaged over: the table and the plot show mean ± standard deviation of the
metric per value of the other swept keys. With two such keys (e.g. `data.real_fraction` and a
recipe) the plot draws one line per value of the second, the Markdown adds a grid (rows: the
first key, columns: the second) and `sweep_heatmap.png` draws that grid. A job without
summary.json is listed as failed.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anomaly_vit import rundir
from anomaly_vit.errors import MissingFileError
from anomaly_vit.sweep.heatmap import Cell, plot_heatmap
from anomaly_vit.viz.sweep import SweepSeries, plot_sweep

CSV_NAME, MD_NAME, PLOT_NAME = rundir.SWEEP_CSV, rundir.SWEEP_MD, rundir.SWEEP_PNG
HEATMAP_NAME = "sweep_heatmap.png"
DEFAULT_METRIC = "test/balanced_acc"
TABLE_METRICS = ("test/balanced_acc", "test/auroc", "test/f1", "test/acc")
GRID_METRIC = "test/auroc"  # a two-key sweep's Markdown has a grid of the metric and of this


@dataclass
class Job:
    """One job of a multirun: its folder, overrides (key -> value) and flat metrics."""

    name: str
    path: Path
    overrides: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    failed: bool = False
    reason: str = ""  # why a failed job failed (its error.txt), when it says


def _override_pair(text: str) -> tuple[str, str]:
    key, _, value = str(text).partition("=")
    return key.lstrip("+~"), value


def _job_metrics(summary: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for section in ("fit", "test", "best_score"):
        for key, value in (summary.get(section) or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[f"best/{key}" if section == "best_score" else key] = float(value)
    if isinstance(summary.get("global_epoch"), int):
        metrics["global_epoch"] = float(summary["global_epoch"])
    return metrics


def _order(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def read_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job folder under `sweep_dir` (one with `.hydra/overrides.yaml`), in job order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise MissingFileError(
            f"sweep folder {sweep_dir} does not exist; pass a multirun folder (outputs/multiruns/<time>)."
        )
    jobs = []
    for folder in sorted(
        (p.parents[1] for p in sweep_dir.glob("*/.hydra/overrides.yaml")), key=_order
    ):
        overrides = (
            yaml.safe_load((folder / rundir.HYDRA_DIR / rundir.OVERRIDES_FILE).read_text()) or []
        )
        job = Job(folder.name, folder, dict(_override_pair(o) for o in overrides))
        try:
            job.metrics = _job_metrics(rundir.read_json(folder / rundir.SUMMARY_JSON))
        except (OSError, ValueError):
            job.failed = True
            error_txt = folder / rundir.ERROR_TXT
            job.reason = error_txt.read_text().strip() if error_txt.is_file() else ""
        jobs.append(job)
    if not jobs:
        raise MissingFileError(
            f"{sweep_dir} holds no job folders (<n>/.hydra/overrides.yaml); is it a multirun folder?"
        )
    return jobs


def swept_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in the order they were given."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _sort_key(values: tuple[str | None, ...]) -> tuple:
    return tuple((0, n, "") if (n := _number(v)) is not None else (1, 0.0, str(v)) for v in values)


@dataclass
class Group:
    """Jobs sharing every swept value except the seed keys."""

    values: tuple[str | None, ...]
    jobs: list[Job]

    def stats(self, metric: str) -> tuple[float, float, int]:
        """Mean, standard deviation (0 for one job) and count of `metric` over finished jobs."""
        xs = [
            j.metrics[metric]
            for j in self.jobs
            if metric in j.metrics and math.isfinite(j.metrics[metric])
        ]
        if not xs:
            return math.nan, math.nan, 0
        return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0, len(xs)


def group_jobs(jobs: Sequence[Job], keys: Sequence[str]) -> list[Group]:
    """Groups of jobs by the values of `keys`, sorted by those values (numbers numerically)."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.overrides.get(k) for k in keys), []).append(job)
    return [Group(values, groups[values]) for values in sorted(groups, key=_sort_key)]


def write_csv(jobs: Sequence[Job], keys: Sequence[str], path: Path) -> Path:
    """One row per job: job, status, the swept values, every metric, the job folder."""
    metrics = sorted({m for job in jobs for m in job.metrics})
    rows = (
        [job.name, "failed" if job.failed else "ok", *(job.overrides.get(k, "") for k in keys),
         *(job.metrics.get(m, "") for m in metrics), str(job.path)]
        for job in jobs
    )  # fmt: skip
    return rundir.write_csv(path, ["job", "status", *keys, *metrics, "run_dir"], rows)


def _cell(mean: float, std: float, n: int) -> str:
    """`mean ± std`; one job has no spread to show, no job no value."""
    return "–" if n == 0 else f"{mean:.3f}" if n == 1 else f"{mean:.3f} ± {std:.3f}"


def grid(
    jobs: Sequence[Job], keys: Sequence[str], seed_keys: Sequence[str], metric: str
) -> tuple[list[str], list[str], list[list[Cell]]] | None:
    """(row values, column values, cells) of `metric` when exactly two non-seed keys were swept
    (rows: the first key, columns: the second), else None."""
    group_keys = [k for k in keys if k not in seed_keys]
    if len(group_keys) != 2:
        return None
    rows, columns = ([g.values[0] for g in group_jobs(jobs, [k])] for k in group_keys)
    stats = {g.values: g.stats(metric) for g in group_jobs(jobs, group_keys)}
    empty = (math.nan, math.nan, 0)
    return rows, columns, [[stats.get((r, c), empty) for c in columns] for r in rows]


def grid_markdown(
    jobs: Sequence[Job], keys: Sequence[str], seed_keys: Sequence[str], metric: str
) -> list[str]:
    """The two-key grid of `metric` as Markdown lines (none for other sweeps)."""
    table = grid(jobs, keys, seed_keys, metric)
    if table is None:
        return []
    rows, columns, cells = table
    row_key, column_key = (k for k in keys if k not in seed_keys)
    lines = ["", f"`{metric}`, rows `{row_key}`, columns `{column_key}`:", "",
             "| " + " | ".join([f"`{row_key}` \\ `{column_key}`", *map(str, columns)]) + " |",
             "|" + "---|" * (len(columns) + 1)]  # fmt: skip
    for value, row in zip(rows, cells, strict=True):
        lines.append("| " + " | ".join([str(value), *(_cell(*c) for c in row)]) + " |")
    return lines


def markdown(
    jobs: Sequence[Job], keys: Sequence[str], seed_keys: Sequence[str], metric: str, title: str
) -> str:
    """A table a person can paste: mean ± std over seeds per value of the other swept keys."""
    group_keys = [k for k in keys if k not in seed_keys]
    seeds = [k for k in keys if k in seed_keys]
    groups = group_jobs(jobs, group_keys)
    columns = [
        metric,
        *(m for m in TABLE_METRICS if m != metric and any(m in j.metrics for j in jobs)),
    ]
    failed = sum(job.failed for job in jobs)
    fixed = sorted({f"{k}={v}" for job in jobs for k, v in job.overrides.items() if k not in keys})
    lines = [
        f"# Sweep: {title}",
        "",
        f"{len(jobs)} jobs ({failed} failed). Swept: "
        + (
            ", ".join(f"`{k}` ({len({j.overrides.get(k) for j in jobs})} values)" for k in keys)
            or "nothing"
        )
        + (f". Fixed: {' '.join(f'`{o}`' for o in fixed)}" if fixed else "")
        + ".",
        f"Cells: mean ± standard deviation over {' and '.join(f'`{s}`' for s in seeds) or 'jobs'} (the value alone where n = 1); n = finished jobs.",
        "",
        "| " + " | ".join([*(f"`{k}`" for k in group_keys), "n", *columns]) + " |",
        "|" + "---|" * (len(group_keys) + 1 + len(columns)),
    ]
    for group in groups:
        stats = [group.stats(m) for m in columns]
        n = f"{stats[0][2]}" + (
            f" ({len(group.jobs) - stats[0][2]} failed)" if len(group.jobs) > stats[0][2] else ""
        )
        lines.append(
            "| "
            + " | ".join([*(str(v) for v in group.values), n, *(_cell(*s) for s in stats)])
            + " |"
        )
    scored = [(g.stats(metric), g) for g in groups if g.stats(metric)[2]]
    if scored:
        (mean, std, n), best = max(scored, key=lambda item: item[0][0])
        where = (
            ", ".join(f"`{k}={v}`" for k, v in zip(group_keys, best.values, strict=True))
            or "all jobs"
        )
        lines += ["", f"Best `{metric}`: {where}: {_cell(mean, std, n)} (n={n})."]
    for name in dict.fromkeys((metric, GRID_METRIC)):
        if any(name in job.metrics for job in jobs):
            lines += grid_markdown(jobs, keys, seed_keys, name)
    return "\n".join(lines) + "\n"


def plot(
    jobs: Sequence[Job], keys: Sequence[str], seed_keys: Sequence[str], metric: str, path: Path
) -> Path:
    """`metric` against the first non-seed swept key: mean ± std over seeds, one line per value
    of the other swept keys, single jobs as faint dots (drawn by `viz.sweep.plot_sweep`)."""
    group_keys = [k for k in keys if k not in seed_keys]
    x_key = group_keys[0] if group_keys else None
    hue_keys = group_keys[1:]
    numeric = x_key is not None and all(_number(j.overrides.get(x_key)) is not None for j in jobs)
    categories = [g.values[0] for g in group_jobs(jobs, [x_key])] if x_key and not numeric else []

    def x_of(value: str | None) -> float:
        return _number(value) if numeric else float(categories.index(value)) if x_key else 0.0

    series = []
    for hue in group_jobs(jobs, hue_keys):
        label = ", ".join(f"{k}={v}" for k, v in zip(hue_keys, hue.values, strict=True)) or None
        points = [(x_of(j.overrides.get(x_key)), j.metrics[metric]) for j in hue.jobs
                  if metric in j.metrics and math.isfinite(j.metrics[metric])]  # fmt: skip
        line = SweepSeries(label, points)
        for group in group_jobs(hue.jobs, [x_key] if x_key else []):
            mean, std, n = group.stats(metric)
            if n:
                line.xs.append(x_of(group.values[0]) if x_key else 0.0)
                line.means.append(mean)
                line.stds.append(std)
        series.append(line)
    seeds = [k for k in keys if k in seed_keys]
    return plot_sweep(
        series,
        path,
        x_label=x_key or "job",
        y_label=metric,
        title=f"{metric}: mean ± std over {', '.join(seeds) or 'jobs'}",
        categories=[str(c) for c in categories],
    )


def write_report(
    sweep_dir: str | Path, metric: str = DEFAULT_METRIC, seed_keys: Sequence[str] = ("seed",)
) -> dict[str, Path]:
    """Write sweep_summary.csv, sweep_summary.md and sweep.png (and for a two-key sweep
    sweep_heatmap.png) into `sweep_dir`; return their paths."""
    sweep_dir = Path(sweep_dir)
    jobs = read_jobs(sweep_dir)
    keys = swept_keys(jobs)
    paths = {
        "csv": write_csv(jobs, keys, sweep_dir / CSV_NAME),
        "md": sweep_dir / MD_NAME,
        "png": plot(jobs, keys, seed_keys, metric, sweep_dir / PLOT_NAME),
    }
    table = grid(jobs, keys, seed_keys, metric)
    if table is not None:
        row_key, column_key = (k for k in keys if k not in seed_keys)
        paths["heatmap"] = plot_heatmap(
            *table, sweep_dir / HEATMAP_NAME, row_key, column_key,
            f"{metric}: mean ± std over {', '.join(k for k in keys if k in seed_keys) or 'jobs'}",
        )  # fmt: skip
    text = markdown(jobs, keys, seed_keys, metric, str(sweep_dir)) + failure_lines(jobs)
    rundir.write_text(paths["md"], text)
    return paths


def failure_lines(jobs: Sequence[Job]) -> str:
    """A Markdown list of the failed jobs and why each failed ("" when none failed)."""
    failed = [job for job in jobs if job.failed]
    if not failed:
        return ""
    lines = ["", "## Failed jobs", ""]
    for job in failed:
        given = " ".join(f"`{k}={v}`" for k, v in job.overrides.items())
        why = job.reason or f"no reason recorded; see {job.path}/*.log"
        lines.append(f"- job {job.name} ({given}): {why}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: rebuild the report of a multirun folder and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a multirun folder, e.g. outputs/multiruns/<time>")
    parser.add_argument(
        "--metric", default=DEFAULT_METRIC, help=f"metric to compare (default: {DEFAULT_METRIC})"
    )
    parser.add_argument("--seed-key", action="append", dest="seed_keys",
                        help="override key averaged over (repeatable; default: seed)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.sweep_dir, args.metric, args.seed_keys or ["seed"])
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    print(paths["md"].read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()

"""Epochs and wall time to a target validation score: the default recipe against the seed recipe.

Each recipe trains in its own `python -m anomaly_vit.train` process on the same data and seed,
with one callback added (`TargetProbe`): it notes the wall clock at the end of every epoch and
stops the run at the epoch that reaches the target, so neither run trains longer than it must.
Epochs come from the run's metrics.csv (the first epoch whose metric reaches the target), wall
times from the probe's clock: seconds from launching the process to the end of that epoch
(start-up, data, training and validation included).
"""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from anomaly_vit.bench.system import run_with_peak_rss
from anomaly_vit.rundir import read_metrics_csv

CLOCK_FILE = "bench_clock.csv"
# metrics are float32: 0.9 is stored as 0.89999998, which still reaches a target of 0.9
TOLERANCE = 1e-6


def epochs_to_target(rows: list[dict[str, float]], metric: str, target: float) -> int | None:
    """The first (global) epoch whose `metric` is >= `target` (up to float32 rounding); None when
    none is."""
    for row in sorted(rows, key=lambda r: r.get("epoch", math.inf)):
        value = row.get(metric, math.nan)
        if value is not None and math.isfinite(value) and value >= target - TOLERANCE:
            return int(row["epoch"])
    return None


def convergence_ratio(
    default_epochs: int | None, default_cap: int, seed_epochs: int | None, seed_cap: int
) -> tuple[float | None, str]:
    """How many times fewer epochs the default recipe needs than the seed recipe, and how far
    the number is known: `measured` (both reached), `lower_bound` (the seed did not reach the
    target in `seed_cap` epochs: ratio >= seed_cap / default), `upper_bound` (only the seed
    reached it), `not_reached` (neither: no ratio)."""
    if default_epochs is not None and seed_epochs is not None:
        return seed_epochs / default_epochs, "measured"
    if default_epochs is not None:
        return seed_cap / default_epochs, "lower_bound"
    if seed_epochs is not None:
        return seed_epochs / default_cap, "upper_bound"
    return None, "not_reached"


class TargetProbe(L.Callback):
    """Append (global epoch, unix time, metric) to `bench_clock.csv` in the run dir at the end of
    every training epoch; with `stop`, end the fit once `metric` >= `target`."""

    def __init__(
        self,
        metric: str = "val/balanced_acc",
        target: float = 0.9,
        stop: bool = True,
        filename: str = CLOCK_FILE,
    ) -> None:
        self.metric, self.target, self.stop, self.filename = (
            metric,
            float(target),
            bool(stop),
            filename,
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get(self.metric)
        value = float(value) if value is not None else math.nan
        path = Path(trainer.default_root_dir) / self.filename
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["epoch", "unix_time", self.metric])
            writer.writerow(
                [
                    int(getattr(pl_module, "global_epoch", trainer.current_epoch + 1)),
                    time.time(),
                    value,
                ]
            )
        if self.stop and math.isfinite(value) and value >= self.target - TOLERANCE:
            trainer.should_stop = True


def read_clock(path: Path) -> dict[int, float]:
    """{global epoch: unix time at its end} from a `bench_clock.csv`."""
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {int(row["epoch"]): float(row["unix_time"]) for row in csv.DictReader(handle)}


@dataclass
class RecipeRun:
    """One recipe's run: what it reached and when."""

    recipe: str
    seed: int
    max_epochs: int
    run_dir: str
    returncode: int = 0
    epochs_run: int = 0
    epochs_to_target: int | None = None
    seconds_to_target: float | None = None
    wall_seconds: float = math.nan
    best: float = math.nan
    seconds_per_epoch: float = math.nan
    metric_by_epoch: list[float] = field(default_factory=list)
    log_tail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_override(metric: str, target: float) -> str:
    """The Hydra override that adds `TargetProbe` to the run's callbacks."""
    return (
        f"+callbacks.bench_target_probe={{_target_:{TargetProbe.__module__}.TargetProbe,"
        f"metric:'{metric}',target:{float(target)},stop:true}}"
    )


def run_recipe(
    recipe: str,
    seed: int,
    max_epochs: int,
    overrides: list[str],
    run_dir: Path,
    metric: str,
    target: float,
    cwd: Path | None = None,
) -> RecipeRun:
    """Train `overrides` (a recipe) in a subprocess until `metric` >= `target` or `max_epochs`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "anomaly_vit.train",
        *overrides,
        f"seed={seed}",
        f"trainer.max_epochs={max_epochs}",
        "test=false",
        f"hydra.run.dir={run_dir}",
        probe_override(metric, target),
    ]
    log_path = run_dir / "bench_stdout.log"
    started = time.time()  # the epoch clock file holds time.time() stamps
    process = run_with_peak_rss(command, log_path, cwd=cwd)
    rows = read_metrics_csv(run_dir / "metrics.csv")
    clock = read_clock(run_dir / CLOCK_FILE)
    reached = epochs_to_target(rows, metric, target)
    values = [row.get(metric, math.nan) for row in sorted(rows, key=lambda r: r["epoch"])]
    epoch_ends = [clock[e] for e in sorted(clock)]
    result = RecipeRun(
        recipe=recipe, seed=seed, max_epochs=max_epochs, run_dir=str(run_dir),
        returncode=process["returncode"], epochs_run=len(rows), epochs_to_target=reached,
        seconds_to_target=(clock[reached] - started) if reached in clock else None,
        wall_seconds=process["wall_seconds"], best=max((v for v in values if math.isfinite(v)), default=math.nan),
        seconds_per_epoch=_median_step(epoch_ends), metric_by_epoch=values,
    )  # fmt: skip
    if process["returncode"] != 0:
        result.log_tail = log_path.read_text()[-3000:]
    return result


def _median_step(times: list[float]) -> float:
    steps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    return steps[len(steps) // 2] if steps else math.nan

"""Hydra callback: write the sweep report into the multirun folder when a multirun ends."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReport(Callback):
    """On `on_multirun_end`: sweep_summary.csv/.md and sweep.png (see `anomaly_vit.sweep.report`).

    A report that cannot be written is logged, never raised: the jobs' results stay on disk and
    `avit-sweep-report <dir>` rebuilds it. When a job failed, the sweep exits 1 after the
    report (whose "Failed jobs" list says why each failed).
    """

    def __init__(
        self, metric: str = "test/balanced_acc", seed_keys: Sequence[str] = ("seed",)
    ) -> None:
        self.metric = metric
        self.seed_keys = list(seed_keys)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from anomaly_vit.sweep.report import read_jobs, write_report

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            paths = write_report(sweep_dir, self.metric, self.seed_keys)
        except Exception as error:  # noqa: BLE001 - a report must never fail the sweep
            log.error(
                "sweep report not written (%s); rebuild it with: avit-sweep-report %s",
                error,
                sweep_dir,
            )
            return
        log.info("sweep report: %s", ", ".join(str(p) for p in paths.values()))
        print(f"\nSweep report: {paths['md']}\n{paths['md'].read_text()}")
        failed = [job for job in read_jobs(sweep_dir) if job.failed]
        if failed:  # the sweep ran to its end, but it did not all work: say so in the exit code
            message = (
                f"{len(failed)} job(s) of the sweep failed ({', '.join(j.name for j in failed)}); "
                f"why: {paths['md']} (## Failed jobs)"
            )
            log.error("%s", message)
            print(f"\nerror: {message}", file=sys.stderr)
            raise SystemExit(1)

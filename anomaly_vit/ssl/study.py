"""Read the pretrain-vs-scratch study from run dirs: `python -m anomaly_vit.ssl.study RUN...`.

Per training run (from scratch or fine-tuned from a pretraining): the classification epochs it
took to reach a validation balanced accuracy (its own epochs, counted after any pretraining),
its validation AUROC at the end and its test metrics (summary.json).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from anomaly_vit.errors import ConfigError
from anomaly_vit.rundir import METRICS_CSV, SUMMARY_JSON, read_json, read_metrics_csv


def study_row(run_dir: str | Path, threshold: float = 0.9) -> dict[str, Any]:
    """Pretraining epochs, epochs to `threshold` val/balanced_acc (None: never), end metrics."""
    run_dir = Path(run_dir)
    rows = read_metrics_csv(run_dir / METRICS_CSV)
    if not rows:
        raise ConfigError(f"{run_dir} has no {METRICS_CSV}: give the run dirs of training runs.")
    summary = read_json(run_dir / SUMMARY_JSON) if (run_dir / SUMMARY_JSON).is_file() else {}
    first_epoch = int(rows[0]["epoch"]) - 1  # the parent's global epoch (0 from scratch)
    reached = [r["epoch"] for r in rows if r.get("val/balanced_acc", math.nan) >= threshold]
    test = summary.get("test", {})
    return {
        "run": run_dir.name,
        "parent_epochs": first_epoch,
        "epochs": len(rows),
        f"epochs_to_{threshold:g}": int(reached[0]) - first_epoch if reached else None,
        "val_balanced_acc_end": rows[-1].get("val/balanced_acc"),
        "val_auroc_end": rows[-1].get("val/auroc"),
        "test_balanced_acc": test.get("test/balanced_acc"),
        "test_auroc": test.get("test/auroc"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run dirs of anomaly_vit.train")
    parser.add_argument("--threshold", type=float, default=0.9)
    args = parser.parse_args(argv)
    try:
        rows = [study_row(run, args.threshold) for run in args.runs]
    except (OSError, ValueError) as error:  # not a training run dir: say which, no traceback
        raise SystemExit(f"error: {error}") from None
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

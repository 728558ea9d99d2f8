"""Expected metric values computed from what a run wrote (instead of range checks that cannot
fail)."""

from __future__ import annotations


def balanced_acc_of(confusion: list[list[int]]) -> float:
    """Mean per-class recall of a confusion matrix (rows: true class), over the classes present."""
    recalls = [row[i] / sum(row) for i, row in enumerate(confusion) if sum(row)]
    return sum(recalls) / len(recalls)


def best_of_column(rows: list[dict[str, str]], column: str) -> float:
    """The largest value of a metrics.csv column (what a `mode: max` best checkpoint keeps)."""
    return max(float(row[column]) for row in rows)

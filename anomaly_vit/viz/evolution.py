"""`rollouts/evolution.png`: the latest probes' maps of one kind at every dump, spread out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from anomaly_vit.viz.overlays import evolution_figure


def spread(values: Sequence[int], max_count: int) -> list[int]:
    """At most `max_count` of `values`, evenly spread, always with the first and the last."""
    if len(values) <= max_count:
        return list(values)
    picks = np.unique(np.linspace(0, len(values) - 1, max_count).round().astype(int))
    return [values[i] for i in picks]


def same_probe_epochs(dumps: Mapping[int, Mapping[str, np.ndarray]], kind: str) -> list[int]:
    """Epochs (ascending) whose dump has `kind` maps of the same probe images as the latest."""
    latest = dumps[max(dumps)]
    return [
        epoch
        for epoch, dump in sorted(dumps.items())
        if f"maps_{kind}" in dump
        and dump["images"].shape == latest["images"].shape
        and np.array_equal(dump["images"], latest["images"])
    ]


def evolution_from_dumps(
    dumps: Mapping[int, Mapping[str, np.ndarray]],
    kind: str,
    max_columns: int,
    panel_in: float,
    panel_scores: Mapping[int, Sequence[float]] | None = None,
    panel_score_name: str = "score",
) -> Figure | None:
    """The evolution figure of `kind` over at most `max_columns` dumps; None without dumps.
    `panel_scores`: {epoch: one number per probe} written on the panels (`evolution_figure`)."""
    if not dumps:
        return None
    latest = dumps[max(dumps)]
    epochs = spread(same_probe_epochs(dumps, kind), max_columns)
    return evolution_figure(
        latest["images"],
        {epoch: dumps[epoch][f"maps_{kind}"] for epoch in epochs},
        masks=latest["masks"],
        kind=kind,
        panel_in=panel_in,
        panel_scores=panel_scores,
        panel_score_name=panel_score_name,
    )

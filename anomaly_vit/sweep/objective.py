"""The number a Hydra sweeper (Optuna) gets back from one training job.

A job that fails, or whose metric is missing or NaN, scores the worst value for the sweep's
direction (-inf when maximising, +inf when minimising): Optuna refuses NaN and would end the
whole study on it, while a worst score keeps the study going and steers it away.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from omegaconf import ListConfig, OmegaConf

log = logging.getLogger(__name__)


def _hydra_cfg():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def in_multirun() -> bool:
    """True inside a job of `-m` / a sweeper."""
    from hydra.types import RunMode

    hydra_cfg = _hydra_cfg()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def worst_value() -> float:
    """-inf, or +inf when the sweeper's `direction` is minimize."""
    hydra_cfg = _hydra_cfg()
    direction = (
        OmegaConf.select(hydra_cfg, "sweeper.direction", default=None) if hydra_cfg else None
    )
    if isinstance(direction, list | ListConfig):
        direction = direction[0] if direction else None
    return math.inf if "min" in str(direction or "maximize").lower() else -math.inf


def objective(results: dict[str, Any], metric: str | None) -> float | None:
    """`metric` of a finished job: the best checkpoint's score when it monitors `metric`
    (the checkpoint that was tested), else the last validation epoch's value."""
    if not metric:
        return None
    value = results.get("best_score", {}).get(metric, results.get("fit", {}).get(metric))
    if not isinstance(value, int | float) or not math.isfinite(value):
        known = sorted({*results.get("best_score", {}), *results.get("fit", {})})
        log.warning(
            "optimized_metric=%s is %s (known: %s); returning the worst value.",
            metric,
            value,
            known,
        )
        return worst_value()
    return float(value)

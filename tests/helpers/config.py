"""Config composition for the tests: the project's own `anomaly_vit.compose` (the bench uses it too)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from anomaly_vit import CONF_DIR
from anomaly_vit.compose import compose  # re-exported: compose(name, overrides) for any command

ROOT = Path(__file__).resolve().parents[2]
CONF = Path(CONF_DIR)


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a config like the CLI does, with the run dir set to `output_dir`."""
    return compose(config_name, overrides, output_dir=output_dir)

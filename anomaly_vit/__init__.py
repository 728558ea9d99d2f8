"""anomaly-vit: train timm ViTs to find defects on real + synthetic images, and show where they look."""

from pathlib import Path

# Absolute, so console scripts (avit-train, ...) find the configs too: Hydra reads a relative
# config_path as a Python package when the entry point is not run with `python -m`.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")

# the run-dir resolvers of conf/hydra/default.yaml, for every entry point
from anomaly_vit import rundir  # noqa: E402, F401

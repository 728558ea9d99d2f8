"""anomaly-vit: train timm ViTs to find defects on real + synthetic images, and show where they look.

Importing the package pulls in nothing heavy (no torch, no Hydra), so `anomaly_vit.deploy` runs
where only numpy, pillow and onnxruntime are installed. `CONF_DIR` is looked up lazily: reading
it (every Hydra entry point does, `from anomaly_vit import CONF_DIR`) first registers the run-dir
resolvers of conf/hydra/default.yaml (`anomaly_vit.rundir`).
"""

from pathlib import Path

# Absolute, so console scripts (avit-train, ...) find the configs too: Hydra reads a relative
# config_path as a Python package when the entry point is not run with `python -m`.
_CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def __getattr__(name: str) -> str:
    if name == "CONF_DIR":
        from anomaly_vit import rundir  # noqa: F401 - the run-dir resolvers, for every entry point

        return _CONF_DIR
    raise AttributeError(f"module 'anomaly_vit' has no attribute {name!r}")

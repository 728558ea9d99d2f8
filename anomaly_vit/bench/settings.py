"""The bench's settings: conf/bench.yaml composed with its mode (`bench=full|quick`) and the
command line, as one plain dict for the steps and the report."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

# the parts of the composed config that are Hydra's or only there for its run dir
NOT_SETTINGS = ("hydra", "paths", "task_name", "mode_train_overrides")


def bench_settings(cfg: DictConfig) -> dict[str, Any]:
    """Every bench setting, resolved; `train_overrides` are the mode's, then the user's (their
    escaped `\\${...}` come out as `${...}` for the training config to resolve)."""
    settings = {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key not in NOT_SETTINGS
    }
    mode = cfg.get("mode_train_overrides")
    mode = OmegaConf.to_container(mode, resolve=True) if mode is not None else []
    settings["train_overrides"] = [str(o) for o in (*mode, *settings.get("train_overrides", []))]
    return settings

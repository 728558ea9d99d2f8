"""Compose a config of `conf/` the way a `python -m anomaly_vit.<command>` run would, without
running it: the bench and the tests build their training configs through this one function."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from anomaly_vit import CONF_DIR


def compose(
    config_name: str,
    overrides: Sequence[str] = (),
    output_dir: Path | None = None,
    return_hydra_config: bool = True,
) -> DictConfig:
    """`conf/<config_name>.yaml` with `overrides`, the `hydra` node included (so `${hydra:...}`
    interpolations and `hydra/launcher=...` options resolve). With `output_dir` the run dir is
    set there (created) and the config is made the current Hydra config, as in a CLI run."""
    import anomaly_vit.rundir  # noqa: F401 - registers the run-dir resolvers the configs use

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(
            config_name=config_name,
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )
    if output_dir is not None:
        output_dir = Path(output_dir)
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
        HydraConfig.instance().set_config(cfg)
        output_dir.mkdir(parents=True, exist_ok=True)
    return cfg

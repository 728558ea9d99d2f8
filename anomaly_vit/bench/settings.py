"""The bench's settings (conf/bench.yaml: full, quick) and the training configs it composes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from anomaly_vit import CONF_DIR

BENCH_FILE = Path(CONF_DIR) / "bench.yaml"


def load_settings(
    quick: bool = False, dotlist: Sequence[str] = (), path: Path = BENCH_FILE
) -> dict[str, Any]:
    """`full` settings, with `quick` merged over them when asked, then `dotlist` (key=value).

    Values are not resolved: `train_overrides` keep `${...}` for Hydra to resolve in the
    training config.
    """
    if not path.is_file():
        raise FileNotFoundError(f"the bench settings {path} do not exist.")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if "full" not in raw:
        raise ValueError(f"{path} has no `full:` section.")
    full, extra = dict(raw["full"]), dict(raw.get("quick") or {}) if quick else {}
    # lists of override strings are joined, never resolved: they hold ${...} for Hydra
    train_overrides = [
        *(full.pop("train_overrides", None) or []),
        *(extra.pop("train_overrides", None) or []),
    ]
    merged = OmegaConf.merge(OmegaConf.create(full), OmegaConf.create(extra))
    for item in dotlist:
        if "=" not in item:
            raise ValueError(
                f"--set {item!r}: write key=value (e.g. convergence.seed_max_epochs=60)."
            )
        key = item.split("=", 1)[0]
        if OmegaConf.select(merged, key, default="<missing>") == "<missing>":
            raise ValueError(f"--set {item!r}: {key} is not a bench setting (see {path}).")
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
    return OmegaConf.to_container(merged, resolve=False) | {
        "train_overrides": [str(o) for o in train_overrides]
    }


def compose_train_config(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """The training config `python -m anomaly_vit.train <overrides>` would run, with its run
    dir set to `output_dir` (as the project's tests compose it)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import anomaly_vit.checkpointing.resume  # noqa: F401 - registers the resolvers train.yaml uses

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg

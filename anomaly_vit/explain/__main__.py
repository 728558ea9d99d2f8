"""`python -m anomaly_vit.explain ckpt_path=... input=...` (Hydra): explain a checkpoint on images."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from anomaly_vit import CONF_DIR
from anomaly_vit.explain.command import explain


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="explain")
def main(cfg: DictConfig) -> None:
    explain(cfg)


if __name__ == "__main__":
    main()

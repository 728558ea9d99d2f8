"""Export entry point: `python -m anomaly_vit.export ckpt_path=<run>/checkpoints/best.ckpt
format=onnx|torchscript` (Hydra); the bundle is written by `anomaly_vit.deploy.export`."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from anomaly_vit import CONF_DIR
from anomaly_vit.errors import task_wrapper

USAGE = (
    "python -m anomaly_vit.export ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt "
    "format=onnx|torchscript"
)


@task_wrapper
def export(cfg: DictConfig) -> Path:
    """Write the bundle of `cfg.ckpt_path` (conf/export.yaml) and return its folder."""
    from anomaly_vit.deploy.export import export_bundle

    if not cfg.get("ckpt_path"):
        raise ValueError(f"ckpt_path is required: {USAGE}")
    bundle_dir = export_bundle(
        cfg.ckpt_path,
        fmt=str(cfg.format),
        out_dir=cfg.get("out_dir"),
        trust_pickle=bool(cfg.trust_pickle),
        opset=int(cfg.opset),
        check_atol=float(cfg.check_atol),
        overwrite=bool(cfg.overwrite),
    )
    print(f"\nBundle written to {bundle_dir}")
    return bundle_dir


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()

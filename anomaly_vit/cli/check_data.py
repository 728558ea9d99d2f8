"""Data check entry point: `python -m anomaly_vit.check_data [data=...]` (Hydra). Thin.

Builds the datamodule like training does, decodes every image (also those of weight-0 sources
with `all_files=true`), prints the data report and writes `data_report.json` in the run dir.
Exits 1 when `data.on_bad_image=error` and a bad file was found; every file is still listed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from anomaly_vit import CONF_DIR
from anomaly_vit.build import build_datamodule
from anomaly_vit.data.bad_images import OnBadImage, on_bad_image_policy
from anomaly_vit.data.report import render_report, write_report
from anomaly_vit.errors import DataError, task_wrapper
from anomaly_vit.rundir import DATA_REPORT_JSON

log = logging.getLogger(__name__)


@task_wrapper
def check_data(cfg: DictConfig) -> dict[str, Any]:
    """Scan and decode every source, print the report, write data_report.json; return it."""
    output_dir = Path(cfg.paths.output_dir)
    policy = on_bad_image_policy(cfg.data.get("on_bad_image", OnBadImage.SKIP))
    data_cfg = cfg.data.copy()
    with open_dict(data_cfg):
        data_cfg.on_bad_image = (
            OnBadImage.SKIP.value
        )  # list every bad file; the policy decides the exit code
    datamodule = build_datamodule(data_cfg, output_dir)
    datamodule.report_on_setup = False
    datamodule.setup()
    if cfg.get("all_files", True):
        datamodule.inspect_unread()
    datamodule.on_bad_image = policy
    report = datamodule.write_report()
    render_report(report)
    path = write_report(report, output_dir / DATA_REPORT_JSON)
    print(f"\nData report written to {path}")
    bad = report["bad_files"]
    if policy == OnBadImage.ERROR and bad:
        raise DataError(
            f"{len(bad)} bad image file(s), e.g. '{bad[0]['path']}' ({bad[0]['reason']}); with "
            "data.on_bad_image=error training stops at the first: fix or remove them (all are "
            f"listed in {path}), or set data.on_bad_image=skip"
        )
    return report


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="check_data")
def main(cfg: DictConfig) -> None:
    check_data(cfg)


if __name__ == "__main__":
    main()

"""The operator page: `python -m anomaly_vit.app bundle=<export dir>` (Hydra; conf/app.yaml).

Builds the light inferencer on the bundle and serves the page (`anomaly_vit.ui`) on localhost
until Ctrl-C. Nothing of the training stack is imported (Hydra only reads the config).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from anomaly_vit import CONF_DIR
from anomaly_vit.errors import task_wrapper


def build_app(cfg: DictConfig):
    """(Gradio blocks, `Page`) for `cfg`: the inferencer, the starting threshold, the page."""
    from anomaly_vit.deploy.bundle import resolve_bundle_threshold
    from anomaly_vit.ui.inspector import Inspector
    from anomaly_vit.ui.page import Page, build_page

    bundle_dir = Path(str(cfg.bundle)).expanduser()
    inferencer = instantiate(cfg.inferencer)(bundle_dir, threshold=0.0)
    threshold, policy = resolve_bundle_threshold(
        inferencer.bundle, cfg.threshold_policy, cfg.threshold
    )
    page = Page(
        Inspector(inferencer, cfg.max_pixels, cfg.batch_size),
        bundle_dir,
        threshold,
        policy,
        instantiate(cfg.save_threshold),
        instantiate(cfg.look),
    )
    return build_page(page), page


def launch(cfg: DictConfig, block: bool = True):
    """Serve the page on `cfg.host`:`cfg.port`; returns (blocks, page, url) when not `block`."""
    blocks, page = build_app(cfg)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes
    _, url, _ = blocks.launch(
        server_name=str(cfg.host),
        server_port=None if cfg.port is None else int(cfg.port),
        share=False,
        allowed_paths=[str(page.work_dir)],
        max_file_size=cfg.max_upload,
        footer_links=[],
        prevent_thread_lock=not block,
        quiet=not block,
    )
    return blocks, page, url


@task_wrapper
def serve(cfg: DictConfig) -> None:
    launch(cfg, block=True)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="app")
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    main()

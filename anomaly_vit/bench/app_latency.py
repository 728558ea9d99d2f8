"""Latency of the operator page's answer to one photo (`python -m anomaly_vit.app`).

The page is served on localhost from the bundle; a client uploads one `photo_px` x `photo_px`
photo and waits for the page's whole answer (verdict, table, CSV, outlined photo and map
overlay, the two pictures downloaded as the browser would). Also timed, to say where the time
goes: the page's handler called in process, and the inferencer alone.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anomaly_vit.bench.report import Row, median


def sample_photo(path: Path, side_px: int, seed: int = 0) -> Path:
    """A `side_px` square RGB photo: a part-like gradient with noise and one dark scratch."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(90, 170, side_px, dtype=np.float32)
    pixels = ramp[None, :, None] + rng.normal(0, 12, (side_px, side_px, 3))
    pixels[side_px // 3 : side_px // 3 + 6, side_px // 4 : side_px // 2] = 30
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def _times_ms(call: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return times


def page_latency(
    app_overrides: Sequence[str], photo_px: int, warmup: int, repeats: int
) -> dict[str, Any]:
    """Serve the page (conf/app.yaml + `app_overrides`, which name the bundle) and time its
    answer to one photo: over HTTP, in process, and the inferencer alone (ms)."""
    from gradio_client import Client, handle_file

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    from anomaly_vit.cli.app import launch
    from anomaly_vit.compose import compose

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="avit-bench-app-") as tmp:
        photo = sample_photo(Path(tmp) / f"photo_{photo_px}.png", photo_px)
        cfg = compose("app", ["port=null", *app_overrides], return_hydra_config=False)
        blocks, page, url = launch(cfg, block=False)
        try:
            client = Client(
                url, verbose=False, analytics_enabled=False, download_files=str(Path(tmp) / "dl")
            )
            threshold = page.threshold
            http_ms = _times_ms(
                lambda: client.predict(
                    [handle_file(str(photo))], "", threshold, api_name="/inspect"
                ),
                warmup,
                repeats,
            )
            handler_ms = _times_ms(lambda: page.inspect([str(photo)], "", threshold), 1, repeats)
            inferencer = page.inspector.inferencer
            model_ms = _times_ms(lambda: inferencer.predict([str(photo)]), 1, repeats)
        finally:
            blocks.close()
    bundle = page.bundle
    return {
        "photo": f"{photo_px} x {photo_px} px PNG",
        "model_input": [
            bundle.get("input", {}).get("height"),
            bundle.get("input", {}).get("width"),
        ],
        "bundle": str(page.bundle_dir),
        "http_ms": http_ms,
        "handler_ms": handler_ms,
        "inferencer_ms": model_ms,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }


def _p95(values: Sequence[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def latency_row(result: dict[str, Any] | None, goal_ms: float, skipped: str = "") -> Row:
    """The bench row: median ms of the page's answer over HTTP, against `goal_ms`."""
    title = "operator page: answer to one photo (upload -> verdict + pictures)"
    if result is None:
        return Row(
            "10a", "app_latency", title, None, status="skipped", shown="not run", note=skipped
        )
    http = result["http_ms"]
    note = (
        f"{result['photo']}, model input {result['model_input']}; median of {len(http)} over "
        f"HTTP (p95 {_p95(http):.0f} ms); in process: handler {median(result['handler_ms']):.0f}"
        f" ms, inferencer {median(result['inferencer_ms']):.0f} ms; load "
        f"{result['load_average_before'][0]:.2f} -> {result['load_average_after'][0]:.2f}"
    )
    return Row(
        "10a",
        "app_latency",
        title,
        statistics.median(http),
        "ms",
        target=("<=", float(goal_ms)),
        note=note,
        details=result,
    )

"""The deploy benchmark: the ONNX bundle under onnxruntime vs torch eager on the checkpoint.

A model of the real recipe (`deploy.model_overrides`: model=vit_real at KolektorSDD's input,
320x128) is saved as a checkpoint and exported (`deploy.export`). Both engines run the same
graph (`deploy.network.DeployNet`: class head, defect score, map) on the same normalised inputs
with the same thread count, in turns: images/s at `batch_size` (median batch), and single-image
latency (median, p95).
Beside them: the Inferencer's single-photo latency end to end (decode, letterbox, normalise,
network, map back, mask), the bundle's size on disk, and the peak memory (VmHWM, Linux) of a
fresh process that imports only `anomaly_vit.deploy` and predicts photos (torch never loaded).
"""

from __future__ import annotations

import statistics
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import OmegaConf

from anomaly_vit.compose import compose

CLASSES = ["good", "defect"]


def _percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q))


def _timed(run, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def _paired(first, second, repeats: int, warmup: int) -> tuple[list[float], list[float]]:
    """Seconds of `first` and `second` run in turns, so a busy spell of the machine falls on
    both engines alike rather than on whichever ran during it."""
    a, b = _timed(first, 0, warmup), _timed(second, 0, warmup)
    for _ in range(repeats):
        a += _timed(first, 1, 0)
        b += _timed(second, 1, 0)
    return a, b


def save_recipe_checkpoint(overrides: list[str], out_dir: Path) -> tuple[Path, Any]:
    """A freshly initialised model of the recipe as an anomaly_vit checkpoint (speed does not
    depend on the weights): (checkpoint path, the model)."""
    cfg = compose("train", overrides, output_dir=out_dir / "config")
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    model = hydra.utils.instantiate(cfg.model, classes=CLASSES, net=net, _convert_="all").eval()
    path = out_dir / "checkpoints" / "best.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    resize = OmegaConf.select(cfg, "data.resize", default="letterbox")
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": OmegaConf.to_container(OmegaConf.create(dict(model.hparams))),
            "anomaly_vit": {"config": {"data": {"resize": resize}}, "lineage": []},
        },
        path,
    )
    return path, model


def _peak_rss_of_inferencer(bundle: Path, photo_hw: list[int], photos: int, out_dir: Path):
    from anomaly_vit.bench.system import run_with_peak_rss

    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from anomaly_vit.deploy import Inferencer
        inferencer = Inferencer({str(bundle)!r})
        photo = np.random.default_rng(0).integers(0, 256, ({photo_hw[0]}, {photo_hw[1]}, 3), dtype=np.uint8)
        for _ in range({photos}):
            inferencer.predict(photo)
        print("torch loaded:", "torch" in sys.modules)
        status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
        print("VmHWM kB:", status)
        """
    )
    result = run_with_peak_rss([sys.executable, "-c", script], out_dir / "inferencer_rss.log")
    log = Path(result["log"]).read_text()
    if result["returncode"] != 0:
        raise RuntimeError(log[-2000:])
    # the process's own high-water mark: ru_maxrss of a child forked from this (torch-sized)
    # process keeps the parent's pages counted from before the exec
    result["peak_rss_bytes"] = int(log.split("VmHWM kB:")[1].split()[0]) * 1024
    result["torch_loaded"] = "torch loaded: True" in log
    return result


def run_deploy(settings: dict[str, Any], overrides: list[str], out_dir: Path) -> dict[str, Any]:
    """Every number of the deploy rows (module doc)."""
    import onnxruntime

    from anomaly_vit.deploy import Inferencer
    from anomaly_vit.deploy.export import export_bundle
    from anomaly_vit.deploy.network import INPUT_NAME, DeployNet

    threads = int(settings.get("threads") or torch.get_num_threads())
    batch_size, warmup = int(settings["batch_size"]), int(settings["warmup"])
    ckpt, model = save_recipe_checkpoint([*settings["model_overrides"], *overrides], out_dir)
    bundle = export_bundle(ckpt, "onnx", out_dir / "bundle", overwrite=True)
    net = DeployNet(model)
    height, width = net.input_hw
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(batch_size, 3, height, width, generator=generator)
    single = batch[:1].clone()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    feed_batch, feed_single = {INPUT_NAME: batch.numpy()}, {INPUT_NAME: single.numpy()}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            eager_batch, onnx_batch = _paired(
                lambda: net(batch),
                lambda: session.run(None, feed_batch),
                int(settings["batches"]),
                warmup,
            )
            eager_single, onnx_single = _paired(
                lambda: net(single),
                lambda: session.run(None, feed_single),
                int(settings["latency_repeats"]),
                warmup,
            )
    finally:
        torch.set_num_threads(previous_threads)
    photo_hw = [int(v) for v in settings["photo_hw"]]
    photo = np.random.default_rng(0).integers(0, 256, (*photo_hw, 3), dtype=np.uint8)
    inferencer = Inferencer(bundle, threads=threads)
    inferencer_single = _timed(
        lambda: inferencer.predict(photo), int(settings["latency_repeats"]), warmup
    )

    def engine(batches: list[float], singles: list[float]) -> dict[str, float]:
        return {
            "img_per_s": batch_size / statistics.median(batches),
            "latency_median_ms": _percentile_ms(singles, 50),
            "latency_p95_ms": _percentile_ms(singles, 95),
        }

    rss = _peak_rss_of_inferencer(bundle, photo_hw, int(settings["rss_photos"]), out_dir)
    return {
        "input_hw": [height, width],
        "batch_size": batch_size,
        "threads": threads,
        "params": sum(p.numel() for p in model.parameters()),
        "onnx": engine(onnx_batch, onnx_single),
        "eager": engine(eager_batch, eager_single),
        "inferencer_latency_median_ms": _percentile_ms(inferencer_single, 50),
        "inferencer_latency_p95_ms": _percentile_ms(inferencer_single, 95),
        "photo_hw": photo_hw,
        "bundle_bytes": sum(p.stat().st_size for p in bundle.iterdir() if p.is_file()),
        "inferencer_peak_rss_bytes": rss["peak_rss_bytes"],
        "inferencer_torch_loaded": rss["torch_loaded"],
    }

"""Export a checkpoint as a bundle folder: the network (`deploy.network`) and bundle.json.

ONNX goes through torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`) with a
symbolic batch dimension: an operation that would fix the batch size fails the export instead
of silently baking it in (the TorchScript exporter traced `len(batch)` into a constant and the
graph then refused every other batch size). TorchScript is `torch.jit.trace`. Either file is
checked against the checkpoint before the bundle is written: two batch sizes, outputs within
`check_atol`, else the export fails and nothing is left behind.

What inference needs besides the network comes from the checkpoint (input size, resize,
normalisation, classes, decision rule, lineage) and from the run's summary.json (threshold
policies with their validation scores, the pixel threshold, the model card's data counts, test
metrics and map scores); a run without them gets the checkpoint's stored threshold as
``youden`` and the map kind's natural pixel threshold, both named as such.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anomaly_vit.deploy.bundle import (
    BUNDLE_JSON,
    FORMAT_VERSION,
    MODEL_FILES,
    write_bundle_json,
)
from anomaly_vit.deploy.network import INPUT_NAME, OUTPUT_NAMES, DeployNet
from anomaly_vit.explain.checkpoint import load_classifier
from anomaly_vit.explain.inputs import training_resize
from anomaly_vit.model.thresholds import FALLBACK_THRESHOLD
from anomaly_vit.rundir import CHECKPOINTS_DIR, SUMMARY_JSON, read_json

log = logging.getLogger(__name__)

EXPORT_DIR = "export"  # <run>/export/<format>/ by default
# the pixel threshold when validation gave none: a probability's even odds, or no evidence
NATURAL_PIXEL_THRESHOLDS = {"tokens": 0.5, "evidence": 0.0}
CHECK_BATCH_SIZES = (1, 3)
CHANNEL_HANDLING = (
    "any PIL mode to uint8 RGB (anomaly_vit.data.image_io): gray copied to the three channels, "
    "alpha composited on black, 16-bit scaled to 8-bit"
)
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx")  # INFO lines of every graph pass
VERSIONED_PACKAGES = ("anomaly-vit", "torch", "timm", "onnx", "onnxruntime", "onnxscript")


def default_bundle_dir(ckpt_path: str | Path, fmt: str) -> Path:
    """<run>/export/<format> for a checkpoint at <run>/checkpoints/x.ckpt, else beside it."""
    path = Path(ckpt_path).expanduser().resolve()
    run_dir = path.parents[1] if path.parent.name == CHECKPOINTS_DIR else path.parent
    return run_dir / EXPORT_DIR / fmt


def _versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[io.StringIO]:
    """The exporter's progress prints and its graph passes' INFO lines, kept out of the console
    (logged at debug level)."""
    levels = {name: logging.getLogger(name).level for name in EXPORTER_LOGGERS}
    for name in EXPORTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield printed
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        log.debug("exporter output:\n%s", printed.getvalue())


def _write_onnx(net: DeployNet, example: torch.Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch")
    with torch.no_grad(), _quiet_exporter():  # no_grad: the map's no_grad blocks trace as plain ops
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def _write_torchscript(net: DeployNet, example: torch.Tensor, path: Path, opset: int) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(net, (example,), check_trace=False)
    traced.save(str(path))


WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript}


def _run_exported(fmt: str, path: Path, batch: torch.Tensor) -> list[np.ndarray]:
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {INPUT_NAME: batch.numpy()})
    module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return [o.numpy() for o in module(batch)]


def check_exported(net: DeployNet, fmt: str, path: Path, atol: float) -> float:
    """Largest difference between the exported file and `net` over `CHECK_BATCH_SIZES`;
    raises RuntimeError above `atol` (a wrong export is a bug, not a user error)."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for size in CHECK_BATCH_SIZES:
        batch = torch.randn(size, 3, *net.input_hw, generator=generator)
        with torch.no_grad():
            expected = [o.numpy() for o in net(batch)]
        got = _run_exported(fmt, path, batch)
        for name, want, have in zip(OUTPUT_NAMES, expected, got, strict=True):
            if want.shape != have.shape:
                raise RuntimeError(
                    f"exported {fmt} output {name!r} has shape {have.shape} at batch {size}, "
                    f"the model {want.shape}"
                )
            worst = max(worst, float(np.abs(want - have).max()))
    if worst > atol:
        raise RuntimeError(f"exported {fmt} graph differs from the checkpoint by {worst:.2e}")
    return worst


def _run_summary(ckpt_path: Path) -> dict[str, Any]:
    path = ckpt_path.parents[1] / SUMMARY_JSON if ckpt_path.parent.name == CHECKPOINTS_DIR else None
    if path is None or not path.is_file():
        return {}
    try:
        return read_json(path)
    except (OSError, ValueError):
        log.warning("%s cannot be read; the bundle's model card stays empty", path)
        return {}


def _thresholds(model, summary: dict[str, Any]) -> dict[str, Any]:
    stored = summary.get("thresholds") or {}
    if stored.get("policies"):
        return {
            "thresholds": stored["policies"],
            "default_policy": stored["default_policy"],
            "validation": stored.get("validation"),
        }
    value = float(model.defect_threshold)
    log.warning(
        "the run has no threshold policies in summary.json (trained before they existed): the "
        "bundle stores the checkpoint's threshold %.4f as 'youden'",
        value,
    )
    entry = {"threshold": value, "fallback": value == FALLBACK_THRESHOLD, "val": None}
    return {"thresholds": {"youden": entry | {"test": None}}, "default_policy": "youden"}


def _pixel_threshold(kind: str, summary: dict[str, Any]) -> dict[str, Any]:
    stored = summary.get("pixel_threshold") or {}
    if stored.get("kind") == kind and stored.get("value") is not None:
        return {"pixel_threshold": stored["value"], "pixel_threshold_source": stored}
    natural = NATURAL_PIXEL_THRESHOLDS[kind]
    return {
        "pixel_threshold": natural,
        "pixel_threshold_source": {
            "kind": kind,
            "value": natural,
            "method": f"fallback: no validation masks were scored; {kind} >= {natural}",
        },
    }


def bundle_metadata(
    model, info: dict[str, Any], net: DeployNet, fmt: str, ckpt_path: Path, opset: int
) -> dict[str, Any]:
    """Everything bundle.json holds (`deploy.bundle` lists the keys)."""
    summary = _run_summary(ckpt_path)
    good = model.classes[model.good_index]
    defects = [c for c in model.classes if c != good]
    hparams = model.hparams
    return {
        "format_version": FORMAT_VERSION,
        "format": fmt,
        "model_file": MODEL_FILES[fmt],
        "input": {
            "height": net.input_hw[0],
            "width": net.input_hw[1],
            "resize": training_resize(info).value,
            "fill": 0,
            "mean": [float(v) for v in hparams.mean],
            "std": [float(v) for v in hparams.std],
            "channels": 3,
            "channel_handling": CHANNEL_HANDLING,
        },
        "outputs": list(OUTPUT_NAMES),
        "classes": list(model.classes),
        "good_class": good,
        "defect_class": defects[0] if len(defects) == 1 else "defect",
        "decision": model.decision.value,
        "map_kind": net.kind,
        **_thresholds(model, summary),
        **_pixel_threshold(net.kind, summary),
        "lineage": {
            "ckpt_path": str(ckpt_path),
            "ckpt_sha256": _sha256(ckpt_path),
            "global_epoch": info.get("global_epoch"),
            "parents": info.get("lineage", []),
        },
        "run": {
            "data": summary.get("data"),
            "test": summary.get("test"),
            "explain": summary.get("explain"),
        },
        "versions": _versions() | {"opset": opset if fmt == "onnx" else None},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": 1,
        "parent": None,
    }


def export_bundle(
    ckpt_path: str | Path,
    fmt: str = "onnx",
    out_dir: str | Path | None = None,
    trust_pickle: bool = False,
    opset: int = 18,
    check_atol: float = 1e-4,
    overwrite: bool = False,
) -> Path:
    """Write the bundle of `ckpt_path` in `fmt` into `out_dir` (default `default_bundle_dir`)."""
    if fmt not in WRITERS:
        raise ValueError(f"format={fmt!r}: use one of {sorted(WRITERS)}.")
    ckpt_path = Path(ckpt_path).expanduser().resolve()
    target = Path(out_dir).expanduser() if out_dir else default_bundle_dir(ckpt_path, fmt)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ValueError(
            f"out_dir={target} already holds files: choose another out_dir or set overwrite=true."
        )
    model, info = load_classifier(ckpt_path, trust_pickle=trust_pickle)
    net = DeployNet(model)
    tmp = target.parent / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model_path = tmp / MODEL_FILES[fmt]
        WRITERS[fmt](net, torch.zeros(2, 3, *net.input_hw), model_path, opset)
        worst = check_exported(net, fmt, model_path, check_atol)
        bundle = bundle_metadata(model, info, net, fmt, ckpt_path, opset)
        bundle["export_check"] = {"batch_sizes": list(CHECK_BATCH_SIZES), "max_abs_diff": worst}
        write_bundle_json(tmp, bundle)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(target)
    log.info("bundle written to %s (%s)", target / BUNDLE_JSON, fmt)
    return target

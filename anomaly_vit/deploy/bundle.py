"""The bundle folder: bundle.json (everything inference needs) beside the network file.

``bundle.json`` (`FORMAT_VERSION` 1) holds: ``format`` (onnx | torchscript) and ``model_file``;
``input`` {height, width, resize (letterbox | squash | crop), fill, mean, std (0..1 scale),
channels, channel_handling}; ``classes``, ``good_class``, ``defect_class``; ``decision``
(`model.mask_loss.decision`); ``map_kind`` (tokens | evidence); ``thresholds`` {policy:
{threshold, fallback, val, test, bootstrap}} and ``default_policy``; ``validation`` (the
validation defect scores and labels the policies were chosen on, so any policy can be chosen
later); ``pixel_threshold`` and ``pixel_threshold_source``; ``lineage``, ``run`` (the model card:
data counts, test metrics, map scores); ``versions``; ``created``; ``version`` and ``parent``
(`save_threshold`).

Reading checks the version and the files first, and every problem is one `BundleError` line
that names the file and what to do. numpy-free, torch-free.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from anomaly_vit.model.thresholds import (
    MANUAL_POLICY,
    PolicyError,
    confusion,
    resolve_threshold,
)

FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.ts"}
REQUIRED_KEYS = (
    "format",
    "model_file",
    "input",
    "classes",
    "good_class",
    "defect_class",
    "thresholds",
    "default_policy",
    "pixel_threshold",
    "map_kind",
)


class BundleError(ValueError):
    """A bundle (or a request to it) that cannot be used; the message says what to do."""


def read_bundle(bundle_dir: str | Path) -> dict[str, Any]:
    """The parsed bundle.json of `bundle_dir`, checked: version, keys and the model file."""
    folder = Path(bundle_dir).expanduser()
    path = folder / BUNDLE_JSON
    if not path.is_file():
        raise BundleError(
            f"{path} is missing: point bundle= at a folder written by "
            "`python -m anomaly_vit.export` (it holds bundle.json and the model file)."
        )
    try:
        bundle = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BundleError(f"{path} cannot be read ({error}); export the model again.") from None
    version = bundle.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{path} has format_version {version!r}, newer than this anomaly_vit reads "
            f"({FORMAT_VERSION}): upgrade anomaly_vit (pip install -U 'anomaly-vit[deploy]') or "
            "export the model with this version."
        )
    missing = [key for key in REQUIRED_KEYS if key not in bundle]
    if missing:
        raise BundleError(f"{path} lacks {missing}: export the model again.")
    model_path = folder / bundle["model_file"]
    if not model_path.is_file():
        raise BundleError(
            f"{model_path} is missing from the bundle: copy the whole bundle folder, or export "
            "the model again."
        )
    return bundle


def resolve_bundle_threshold(
    bundle: dict[str, Any], threshold_policy: str | None = None, threshold: float | None = None
) -> tuple[float, str]:
    """(threshold, policy name) to use (`model.thresholds.resolve_threshold` on the bundle's
    stored policies and validation scores); `BundleError` for an unknown policy."""
    try:
        return resolve_threshold(
            bundle["thresholds"],
            bundle["default_policy"],
            bundle.get("validation"),
            threshold_policy,
            threshold,
            where="this bundle",
        )
    except PolicyError as error:
        raise BundleError(str(error)) from None


def policy_entry(bundle: dict[str, Any], value: float) -> dict[str, Any]:
    """A stored-policy entry for threshold `value`, with validation counts where the bundle
    keeps the validation scores."""
    validation = bundle.get("validation") or {}
    counts = None
    if validation.get("scores"):
        counts = confusion(validation["scores"], validation["is_defect"], value)
    return {"threshold": float(value), "fallback": False, "val": counts, "test": None}


def _finite(value: Any) -> Any:
    """NaN and infinities as null, so any JSON reader takes the file (as summary.json)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_bundle_json(bundle_dir: Path, bundle: dict[str, Any]) -> Path:
    """Write bundle.json (atomically: a reader never sees half a file)."""
    path = Path(bundle_dir) / BUNDLE_JSON
    tmp = path.with_name(f".{BUNDLE_JSON}.tmp")
    tmp.write_text(json.dumps(_finite(bundle), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def save_threshold(bundle_dir: str | Path, value: float, name: str = MANUAL_POLICY) -> Path:
    """Write a NEW bundle version beside `bundle_dir` (kept untouched) whose default policy is
    `name` = threshold `value`; returns the new folder (``<bundle>-v<N>``)."""
    source = Path(bundle_dir).expanduser().resolve()
    bundle = read_bundle(source)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise BundleError(f"threshold {value!r} is not a number; give e.g. 0.5.") from None
    if not name or "/" in name or name.strip() != name:
        raise BundleError(f"policy name {name!r} is not usable: give a short name like 'line3'.")
    version = int(bundle.get("version", 1)) + 1
    stem = source.name.split("-v")[0] if bundle.get("parent") else source.name
    target = source.parent / f"{stem}-v{version}"
    while target.exists():
        version += 1
        target = source.parent / f"{stem}-v{version}"
    tmp = source.parent / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    bundle = {
        **bundle,
        "thresholds": {**bundle["thresholds"], name: policy_entry(bundle, value)},
        "default_policy": name,
        "version": version,
        "parent": str(source),
    }
    write_bundle_json(tmp, bundle)
    tmp.rename(target)
    return target

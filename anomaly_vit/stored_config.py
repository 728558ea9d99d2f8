"""A checkpoint is data: check what it stores before anything is built from it.

`eval` rebuilds the data from the config stored in a checkpoint, and `eval` / `explain` build
the network from its hyper-parameters. A crafted checkpoint can pass `weights_only` and still
name any callable as a `_target_`, hide an OmegaConf interpolation in a string, or ask timm to
read a file. So only the project's own data classes may be named (plus what the user trusts
in `trusted_targets`), no stored string may interpolate, and the network settings may not make
timm load a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from anomaly_vit.errors import CheckpointError

# what `data` of a training run may build (conf/data/*): the datamodule and the image sources,
# by the path the configs name them with and by the module that defines them
DATA_TARGETS = (
    "anomaly_vit.data.datamodule.MixedDataModule",
    "anomaly_vit.data.sources.PairedFolderSource",
    "anomaly_vit.data.sources.SingleFolderSource",
    "anomaly_vit.data.sources.ManifestSource",
    "anomaly_vit.data.sources.folders.PairedFolderSource",
    "anomaly_vit.data.sources.folders.SingleFolderSource",
    "anomaly_vit.data.sources.manifest.ManifestSource",
    "anomaly_vit.data.synthetic.CompositeSource",
    "anomaly_vit.data.synthetic.PaintedDefectSource",
    "anomaly_vit.data.synthetic.composites.CompositeSource",
    "anomaly_vit.data.synthetic.painted.PaintedDefectSource",
    "anomaly_vit.data.synthetic.CutPasteSource",
    "anomaly_vit.data.synthetic.cutpaste.CutPasteSource",
    "anomaly_vit.data.synthetic.PerlinSource",
    "anomaly_vit.data.synthetic.perlin.PerlinSource",
    "anomaly_vit.data.synthetic.TransplantSource",
    "anomaly_vit.data.synthetic.transplant.TransplantSource",
    "anomaly_vit.data.synthetic.GoodImagesSource",
    "anomaly_vit.data.synthetic.good_images.GoodImagesSource",
)
# data keys that only shape training batches: evaluation never builds them
TRAINING_ONLY_DATA_KEYS = ("train_transforms", "batch_augment", "demo")
# timm.create_model arguments that load a file or pretrained weights
NET_FILE_KEYS = (
    "pretrained",
    "weights_path",
    "checkpoint_path",
    "pretrained_cfg",
    "pretrained_cfg_overlay",
)
INTERPOLATION = "${"


def _walk(tree: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every node of a nested dict/list, the containers included."""
    yield prefix, tree
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _walk(value, f"{prefix}.{key}")
    elif isinstance(tree, list | tuple):
        for index, value in enumerate(tree):
            yield from _walk(value, f"{prefix}[{index}]")


def _refuse_interpolations(tree: Any, prefix: str, origin: str) -> None:
    for key, value in _walk(tree, prefix):
        if isinstance(value, str) and INTERPOLATION in value:
            raise CheckpointError(
                f"{origin} stores {key}={value!r}, an interpolation: a checkpoint stores resolved "
                "values only, so this file was altered; use a checkpoint written by "
                "anomaly_vit.train."
            )


def checked_data_config(
    stored: Mapping[str, Any], origin: str, trusted_targets: Iterable[str] = ()
) -> dict[str, Any]:
    """The data config stored in a checkpoint, without its training-only keys, once every
    `_target_` in it is one of the project's data classes (or listed in `trusted_targets`).

    `origin` names the file in errors (e.g. `ckpt_path=<path>`).
    """
    allowed = set(DATA_TARGETS) | {str(t) for t in trusted_targets}
    data = {k: v for k, v in dict(stored).items() if k not in TRAINING_ONLY_DATA_KEYS}
    _refuse_interpolations(data, "data", origin)
    for key, node in _walk(data, "data"):
        if isinstance(node, Mapping) and "_target_" in node and node["_target_"] not in allowed:
            raise CheckpointError(
                f"{origin} stores {key}._target_={node['_target_']!r}, which is not one of "
                "anomaly_vit's data classes: a checkpoint may not choose what is built. If you "
                "trust that class, add it to trusted_targets (e.g. "
                f"'trusted_targets=[{node['_target_']}]'), or give the data config yourself "
                "(data.sources...=...)."
            )
    return data


def checked_model_hparams(hparams: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """`ViTClassifier` hyper-parameters from a checkpoint, safe to build from: no `_target_`,
    no interpolation, and a network that loads no file (pretrained weights switched off)."""
    _refuse_interpolations(hparams, "hyper_parameters", origin)
    for key, node in _walk(hparams, "hyper_parameters"):
        if isinstance(node, Mapping) and "_target_" in node:
            raise CheckpointError(
                f"{origin} stores {key}._target_={node['_target_']!r}: a checkpoint may not "
                "choose what is built; use a checkpoint written by anomaly_vit.train."
            )
    net = dict(hparams.get("net") or {})
    asks_for_files = [
        k for k in ("checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay") if net.get(k)
    ]
    if asks_for_files:
        raise CheckpointError(
            f"{origin} stores hyper_parameters.net.{asks_for_files[0]}: a checkpoint's network "
            "may not load another file; use a checkpoint written by anomaly_vit.train."
        )
    net = {k: v for k, v in net.items() if k not in NET_FILE_KEYS}
    return {**hparams, "net": {**net, "pretrained": False, "weights_path": None}}

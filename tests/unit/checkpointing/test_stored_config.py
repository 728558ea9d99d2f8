"""A checkpoint's stored config and hyper-parameters are data: `anomaly_vit.stored_config`
refuses interpolations, `_target_`s and file-loading network settings anywhere in them."""

from __future__ import annotations

import pytest

from anomaly_vit.stored_config import checked_data_config, checked_model_hparams

ORIGIN = "ckpt_path=/runs/x/checkpoints/best.ckpt"
ENV = "${oc.env:HOME}"
DATA = {
    "_target_": "anomaly_vit.data.datamodule.MixedDataModule",
    "sources": {"real": {"_target_": "anomaly_vit.data.sources.PairedFolderSource", "root": "d"}},
    "batch_size": 4,
}
HPARAMS = {"classes": ["good", "defect"], "net": {"model_name": "vit_tiny_patch16_224"}}


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (lambda d: d["sources"]["real"].update(root=ENV), "data.sources.real.root"),
        (lambda d: d.update(extra=[1, {"deep": f"a {ENV} b"}]), "data.extra[1].deep"),
    ],
    ids=["value", "nested_in_a_list"],
)
def test_an_interpolation_in_a_stored_data_config_is_refused(where, key) -> None:
    stored = {**DATA, "sources": {"real": dict(DATA["sources"]["real"])}}
    where(stored)
    with pytest.raises(ValueError, match="an interpolation") as info:
        checked_data_config(stored, ORIGIN)
    assert str(info.value).startswith(f"{ORIGIN} stores {key}=")


def test_an_interpolation_in_stored_hyper_parameters_is_refused() -> None:
    hparams = {**HPARAMS, "net": {**HPARAMS["net"], "model_name": ENV}}
    with pytest.raises(ValueError, match="an interpolation") as info:
        checked_model_hparams(hparams, ORIGIN)
    assert f"stores hyper_parameters.net.model_name='{ENV}'" in str(info.value)


def test_a_clean_stored_config_passes_and_loses_only_training_keys() -> None:
    stored = {**DATA, "batch_augment": {"_target_": "os.system"}, "demo": {"out_dir": "x"}}
    assert checked_data_config(stored, ORIGIN) == DATA
    built = checked_model_hparams(
        {**HPARAMS, "net": {**HPARAMS["net"], "pretrained": True}}, ORIGIN
    )
    assert built["net"] == {**HPARAMS["net"], "pretrained": False, "weights_path": None}


@pytest.mark.parametrize("key", ["checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay"])
def test_a_network_that_loads_a_file_is_refused(key) -> None:
    hparams = {**HPARAMS, "net": {**HPARAMS["net"], key: "/tmp/evil.pth"}}
    with pytest.raises(ValueError, match=f"hyper_parameters.net.{key}"):
        checked_model_hparams(hparams, ORIGIN)

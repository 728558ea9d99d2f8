"""`python -m anomaly_vit.export`: both formats, bundle.json, the default folder, a model without
a token head, and `save_threshold`'s new bundle version."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from anomaly_vit.cli.export import export
from anomaly_vit.deploy import Inferencer, read_bundle, save_threshold
from tests.helpers import compose_config
from tests.helpers.deploy import correlation, explain_maps, explain_rows, photo_folder


@pytest.fixture(scope="module")
def photos(smoke_run_tokens, tmp_path_factory):
    return photo_folder(smoke_run_tokens, tmp_path_factory.mktemp("photos") / "p")


def _run_copy(run_dir, dst):
    """The parts of a run export reads: checkpoints/best.ckpt and summary.json."""
    (dst / "checkpoints").mkdir(parents=True)
    shutil.copy(run_dir / "checkpoints" / "best.ckpt", dst / "checkpoints" / "best.ckpt")
    shutil.copy(run_dir / "summary.json", dst / "summary.json")
    return dst


def test_torchscript_bundle_predicts_like_the_onnx_one(
    smoke_run_tokens, token_bundle, photos, tmp_path
):
    run = _run_copy(smoke_run_tokens, tmp_path / "run")
    cfg = compose_config(
        "export",
        [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "format=torchscript"],
        tmp_path / "log",
    )
    folder = export(cfg)
    assert folder == run / "export" / "torchscript"  # the default: beside the run's checkpoints
    assert read_bundle(folder)["model_file"] == "model.ts"
    onnx = Inferencer(token_bundle).predict(photos)
    scripted = Inferencer(folder).predict(photos)
    for a, b in zip(onnx, scripted, strict=True):
        assert abs(a.score - b.score) < 1e-5 and a.is_defect == b.is_defect
        assert np.nanmax(np.abs(a.map - b.map)) < 1e-4
    with pytest.raises(
        ValueError, match="already holds files: choose another out_dir or set overwrite=true"
    ):
        export(cfg)


def test_bundle_json_holds_what_inference_needs(smoke_run_tokens, token_bundle):
    bundle = read_bundle(token_bundle)
    summary = json.loads((smoke_run_tokens / "summary.json").read_text())
    ckpt = smoke_run_tokens / "checkpoints" / "best.ckpt"
    assert bundle["format_version"] == 1 and bundle["format"] == "onnx"
    assert bundle["input"] | {"channel_handling": None} == {
        "height": 64, "width": 64, "resize": "letterbox", "fill": 0,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "channels": 3,
        "channel_handling": None,
    }  # fmt: skip
    assert (bundle["classes"], bundle["good_class"], bundle["defect_class"]) == (
        ["good", "defect"], "good", "defect",
    )  # fmt: skip
    assert (bundle["decision"], bundle["map_kind"]) == ("mix", "tokens")
    assert bundle["thresholds"] == summary["thresholds"]["policies"]
    assert bundle["default_policy"] == "youden"
    assert bundle["validation"] == summary["thresholds"]["validation"]
    assert bundle["pixel_threshold"] == summary["pixel_threshold"]["value"]
    assert bundle["lineage"]["ckpt_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert bundle["run"]["test"] == summary["test"]
    assert {"torch", "onnx", "onnxruntime"} <= set(bundle["versions"])
    assert bundle["export_check"]["max_abs_diff"] < 1e-4


def test_a_model_without_a_token_head_exports_its_evidence_map(smoke_run, plain_bundle, tmp_path):
    """The plain smoke model: four classes, squash, no token head."""
    bundle = read_bundle(plain_bundle)
    assert (bundle["map_kind"], bundle["decision"], bundle["input"]["resize"]) == (
        "evidence", "head", "squash",
    )  # fmt: skip
    paths = photo_folder(smoke_run, tmp_path / "photos", classes=("crack", "stain"))
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    rows = explain_rows(ckpt, tmp_path / "photos", tmp_path / "explain", "evidence")
    maps = explain_maps(ckpt, paths, "evidence")
    for p in Inferencer(plain_bundle).predict(paths):
        name = p.path.rsplit("/", 1)[-1]
        assert abs(p.score - float(rows[name]["defect_score"])) < 1e-4
        assert p.is_defect == (rows[name]["is_defect"] == "True")
        assert correlation(p.map, maps[name]) >= 0.999
        if p.is_defect and rows[name]["predicted"] != "good":
            assert p.label == rows[name]["predicted"]  # the likeliest defect class


def test_save_threshold_writes_a_new_version_and_keeps_the_old(token_bundle, tmp_path):
    folder = shutil.copytree(token_bundle, tmp_path / "line3")
    before = (folder / "bundle.json").read_bytes()
    new = save_threshold(folder, 0.61, name="line3")
    assert new == tmp_path / "line3-v2"
    assert (folder / "bundle.json").read_bytes() == before
    inferencer = Inferencer(new)
    assert (inferencer.policy, inferencer.threshold) == ("line3", 0.61)
    entry = inferencer.policies()["line3"]
    n_val = len(inferencer.bundle["validation"]["scores"])
    assert sum(entry["val"][k] for k in ("tp", "fp", "tn", "fn")) == n_val
    assert inferencer.bundle["parent"] == str(folder.resolve())
    assert Inferencer(new, threshold_policy="youden").threshold == Inferencer(folder).threshold
    assert save_threshold(new, 0.7) == tmp_path / "line3-v3"

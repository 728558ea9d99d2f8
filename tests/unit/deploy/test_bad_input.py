"""Bad input to a bundle: each case is one clear line that says what to do."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from anomaly_vit.deploy import BundleError, Inferencer, save_threshold
from tests.helpers import run_cli


def _copy(bundle, tmp_path):
    return shutil.copytree(bundle, tmp_path / "bundle")


def _edit(folder, change):
    path = folder / "bundle.json"
    bundle = json.loads(path.read_text())
    change(bundle)
    path.write_text(json.dumps(bundle))


def test_a_bundle_from_a_newer_version_says_upgrade(token_bundle, tmp_path):
    folder = _copy(token_bundle, tmp_path)
    _edit(folder, lambda b: b.update(format_version=99))
    with pytest.raises(BundleError, match=r"format_version 99, newer than .* upgrade anomaly_vit"):
        Inferencer(folder)


def test_a_missing_model_file_is_named(token_bundle, tmp_path):
    folder = _copy(token_bundle, tmp_path)
    (folder / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model.onnx is missing from the bundle: copy the whole"):
        Inferencer(folder)


def test_a_folder_without_bundle_json_is_named(tmp_path):
    with pytest.raises(BundleError, match=r"bundle.json is missing: point bundle= at a folder"):
        Inferencer(tmp_path)


def test_an_unknown_policy_lists_the_forms_and_the_stored_policies(token_bundle):
    with pytest.raises(BundleError) as error:
        Inferencer(token_bundle, threshold_policy="strict")
    message = str(error.value)
    assert "threshold_policy='strict' is not a threshold policy: use youden, max_f1" in message
    assert "Stored in this bundle: [" in message and "\n" not in message


def test_a_threshold_that_is_not_a_number_is_named(token_bundle):
    with pytest.raises(BundleError, match=r"threshold='high' is not a number"):
        Inferencer(token_bundle, threshold="high")


@pytest.mark.parametrize(
    ("array", "says"),
    [
        (np.zeros((20, 30, 2), np.uint8), r"has 2 channels; the model takes gray \(HxW\), RGB"),
        (np.zeros((20, 30, 5), np.uint8), r"has 5 channels"),
        (np.zeros((20, 30, 3), np.float32), r"dtype float32; give uint8 pixel values"),
    ],
)
def test_an_image_the_model_cannot_take_is_one_line_and_the_rest_run(token_bundle, array, says):
    good = np.full((20, 30, 3), 128, np.uint8)
    bad, fine = Inferencer(token_bundle).predict([array, good])
    assert bad.error is not None and "\n" not in bad.error
    assert re.search(says, bad.error)
    assert bad.map.size == 0 and bad.mask_area == 0
    assert fine.error is None and fine.map.shape == (20, 30)


def test_save_threshold_refuses_a_non_number(token_bundle, tmp_path):
    folder = _copy(token_bundle, tmp_path)
    with pytest.raises(BundleError, match=r"threshold 'x' is not a number"):
        save_threshold(folder, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # nothing half-written


def test_predict_cli_reports_a_bad_bundle_in_one_line(tmp_path):
    """The process boundary is the point: what the user sees, without a traceback."""
    photo = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(photo)
    result = run_cli(
        "anomaly_vit.predict",
        f"bundle={tmp_path / 'nowhere'}",
        f"input={photo}",
        f"hydra.run.dir={tmp_path / 'out'}",
        check=False,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert any("bundle.json is missing: point bundle= at a folder" in line for line in lines)

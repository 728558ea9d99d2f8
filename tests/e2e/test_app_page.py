"""The operator page's handlers on an exported smoke bundle, in process: pictures at the photo's
own resolution, bad files listed, a saved threshold as a new bundle version, the model card,
and the command's one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.deploy.draw import OUTLINE_RGB
from anomaly_vit.errors import UserError
from tests.helpers import compose


def _page(bundle, *overrides):
    from anomaly_vit.cli.app import build_app

    return build_app(compose("app", [f"bundle={bundle}", *overrides]))[1]


def test_pictures_are_at_the_photos_resolution_and_outline_the_mask(token_bundle, tmp_path):
    from anomaly_vit.deploy import Inferencer

    photo = tmp_path / "wide.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 150, 3), dtype=np.uint8)).save(photo)
    # the smoke map rarely reaches the stored pixel threshold: a copy of the bundle whose pixel
    # threshold is this photo's median map value has a mask to outline
    bundle = shutil.copytree(token_bundle, tmp_path / "bundle")
    (prediction,) = Inferencer(bundle, threshold=0.0).predict(photo)
    spec = json.loads((bundle / "bundle.json").read_text())
    spec["pixel_threshold"] = float(np.nanmedian(prediction.map))
    (bundle / "bundle.json").write_text(json.dumps(spec))
    page = _page(bundle)
    results, shown, message, *_, verdict, outlined, mapped = page.inspect([str(photo)], "", 0.0)
    assert message == "" and results[0].width == 150 and results[0].height == 90
    assert outlined.shape == mapped.shape == (90, 150, 3)
    assert shown.map_hw.shape == shown.mask_hw.shape == (90, 150)
    # at threshold 0 every photo is a defect: its mask (map >= the pixel threshold) is outlined
    red = np.all(outlined == OUTLINE_RGB, axis=-1)
    assert 0 < shown.mask_hw.sum() < shown.mask_hw.size
    assert red.any() and not (red & ~shown.mask_hw).any()
    assert verdict.startswith("**wide.png**: DEFECT")
    # above every score nothing is outlined and the verdict turns
    *_, verdict, outlined_high, _c, _r = page.move(1.0, results, shown, None)
    assert not np.all(outlined_high == OUTLINE_RGB, axis=-1).any()
    assert "GOOD" in verdict


def test_bad_files_and_empty_input_are_messages(token_bundle, tmp_path):
    page = _page(token_bundle, "max_pixels=5000")
    (tmp_path / "notes.png").write_text("not an image")
    big = tmp_path / "big.png"
    Image.new("L", (100, 60)).save(big)
    ok = tmp_path / "ok.png"
    Image.new("L", (50, 40)).save(ok)
    results, _, message, *_ = page.inspect(
        [str(tmp_path / "notes.png"), str(big), str(ok)], "", 0.5
    )
    assert [r.score is None for r in results] == [True, True, False]
    assert "'notes.png': not a recognised image" in message
    assert "'big.png': 100 x 60 px (0.006 Mpx) is over the page's limit of 0.005 Mpx" in message
    assert "Nothing to inspect" in page.inspect([], "", 0.5)[2]
    assert f"folder '{tmp_path / 'nope'}' does not exist" in page.inspect([], str(tmp_path / "nope"), 0.5)[2]  # fmt: skip
    labelled, words, *_ = page.score_labelled(str(tmp_path / "none.csv"), 0.5)
    assert labelled is None and "labelled set" in words and "does not exist" in words


def test_save_threshold_writes_a_new_bundle_version_and_keeps_the_old(token_bundle, tmp_path):
    bundle = shutil.copytree(token_bundle, tmp_path / "bundle")
    before = (bundle / "bundle.json").read_bytes()
    page = _page(bundle)
    words = page.save_current(0.4321)
    new = tmp_path / "bundle-v2"
    assert f"`{new}`" in words
    assert (bundle / "bundle.json").read_bytes() == before
    saved = json.loads((new / "bundle.json").read_text())
    assert saved["default_policy"] == "manual"
    assert saved["thresholds"]["manual"]["threshold"] == pytest.approx(0.4321)
    # the app started on the new version begins at the saved threshold
    assert _page(new).threshold == pytest.approx(0.4321)


def test_model_card_shows_the_bundles_numbers(token_bundle):
    bundle = json.loads((token_bundle / "bundle.json").read_text())
    card = _page(token_bundle).bundle
    from anomaly_vit.ui.model_card import model_card

    text = model_card(card)
    run = bundle["run"]
    assert f"| test/auroc | {run['test']['test/auroc']:.4g} |" in text
    assert f"| test | {sum(run['data']['test'].values())} |" in text
    pointing = run["explain"]["baselines"]["centre"]["pointing"]
    assert "baseline: centre" in text and f"{pointing:.4g}" in text
    assert bundle["lineage"]["ckpt_path"] in text


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("bundle=/no/such/bundle", "/no/such/bundle"),
        ("threshold_policy=median", "threshold_policy='median' is not a threshold policy"),
    ],
)
def test_the_command_says_what_is_wrong_in_one_line(token_bundle, monkeypatch, override, says):
    from anomaly_vit.cli.app import serve

    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    with pytest.raises(UserError) as info:
        serve(compose("app", [f"bundle={token_bundle}", override]))
    assert says in info.value.message and "\n" not in info.value.message


@pytest.mark.slow
def test_latency_bench_times_the_served_page(token_bundle):
    from anomaly_vit.bench.app_latency import latency_row, page_latency

    result = page_latency([f"bundle={token_bundle}"], photo_px=160, warmup=1, repeats=3)
    assert len(result["http_ms"]) == len(result["handler_ms"]) == 3
    assert result["model_input"] == [64, 64] and result["photo"] == "160 x 160 px PNG"
    # the answer over HTTP holds the handler's work, which holds the inferencer's
    assert min(result["http_ms"]) > min(result["inferencer_ms"]) > 0
    assert latency_row(result, 300).status == "measured"


def test_the_page_is_offline_and_local_by_default(token_bundle):
    import os

    from anomaly_vit.cli.app import build_app

    cfg = compose("app", [f"bundle={token_bundle}"])
    blocks, _ = build_app(cfg)
    assert cfg.host == "127.0.0.1"
    assert blocks.analytics_enabled is False  # no telemetry thread, no version check
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_a_folder_is_inspected_and_a_policy_moves_the_slider(token_bundle, tmp_path):
    page = _page(token_bundle)
    for name, size in (("a.png", (40, 30)), ("sub/b.jpg", (30, 50))):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", size, (90, 100, 110)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a photo: left out of a folder")
    results, _, message, *_ = page.inspect([], str(tmp_path), 0.5)
    assert [(r.name, r.width, r.height) for r in results] == [("a.png", 40, 30), ("sub/b.jpg", 30, 50)]  # fmt: skip
    assert message == "" and all(r.score is not None for r in results)
    stored = page.policies
    assert "recall:1.0" in stored and "fpr:0.01" in stored
    for name, policy in stored.items():
        assert page.choose_policy(name) == policy["threshold"]


def test_a_save_that_fails_is_a_message(token_bundle, tmp_path):
    bundle = shutil.copytree(token_bundle, tmp_path / "bundle")
    page = _page(bundle)
    shutil.rmtree(bundle)  # moved away while the page runs
    words = page.save_current(0.5)
    assert words.startswith(f"Could not save the threshold next to `{bundle}`")
    assert "bundle.json is missing" in words
    assert sorted(p.name for p in tmp_path.iterdir()) == []

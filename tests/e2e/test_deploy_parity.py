"""The exported bundle agrees with `explain` on the checkpoint: same defect scores (1e-4), same
decisions, same maps (correlation >= 0.999), on photos of several sizes and modes; and the
comparison notices a bundle that forgot the letterbox, the normalisation or the threshold."""

from __future__ import annotations

import json
import shutil

import pytest

from anomaly_vit.deploy import Inferencer, read_bundle
from tests.helpers.deploy import correlation, explain_maps, explain_rows, photo_folder

SCORE_TOL = 1e-4
MIN_CORRELATION = 0.999


@pytest.fixture(scope="module")
def reference(smoke_run_tokens, token_bundle, tmp_path_factory):
    """Photos, explain's rows and maps on them, from the token-head smoke model."""
    tmp = tmp_path_factory.mktemp("parity")
    paths = photo_folder(smoke_run_tokens, tmp / "photos")
    ckpt = smoke_run_tokens / "checkpoints" / "best.ckpt"
    kind = read_bundle(token_bundle)["map_kind"]
    rows = explain_rows(ckpt, tmp / "photos", tmp / "explain", kind)
    return paths, rows, explain_maps(ckpt, paths, kind)


def _disagreements(inferencer: Inferencer, reference) -> dict[str, float]:
    """The largest score gap, decision mismatches and the lowest map correlation."""
    paths, rows, maps = reference
    predictions = inferencer.predict(paths)
    gaps, flips, correlations = [], 0, []
    for path, p in zip(paths, predictions, strict=True):
        assert p.error is None, p.error
        row = rows[path.name]
        gaps.append(abs(p.score - float(row["defect_score"])))
        flips += p.is_defect != (row["is_defect"] == "True")
        assert p.map.shape == maps[path.name].shape
        correlations.append(correlation(p.map, maps[path.name]))
    return {"score_gap": max(gaps), "flips": flips, "min_correlation": min(correlations)}


def test_bundle_matches_explain_on_photos_of_every_size_and_mode(token_bundle, reference):
    inferencer = Inferencer(token_bundle)
    found = _disagreements(inferencer, reference)
    assert found["score_gap"] < SCORE_TOL
    assert found["flips"] == 0
    assert found["min_correlation"] >= MIN_CORRELATION
    modes = {p.suffix for p in reference[0]}
    assert modes == {".png"} and len(reference[0]) == 12  # 3 photos x 4 sizes/modes


def _mutated(bundle_dir, tmp_path, change) -> Inferencer:
    copy = tmp_path / "mutated"
    shutil.copytree(bundle_dir, copy)
    bundle = json.loads((copy / "bundle.json").read_text())
    change(bundle)
    (copy / "bundle.json").write_text(json.dumps(bundle))
    return Inferencer(copy)


def _forget_letterbox(bundle):
    assert bundle["input"]["resize"] == "letterbox"
    bundle["input"]["resize"] = "squash"


def _forget_normalisation(bundle):
    bundle["input"]["mean"], bundle["input"]["std"] = [0.0] * 3, [1 / 255] * 3


@pytest.mark.parametrize("change", [_forget_letterbox, _forget_normalisation])
def test_a_bundle_that_forgets_the_preprocessing_is_caught(
    token_bundle, reference, tmp_path, change
):
    found = _disagreements(_mutated(token_bundle, tmp_path, change), reference)
    assert found["score_gap"] > SCORE_TOL or found["min_correlation"] < MIN_CORRELATION


def test_a_bundle_that_forgets_the_threshold_is_caught(token_bundle, reference, tmp_path):
    """explain decides at the checkpoint's threshold; a bundle deciding elsewhere flips images."""
    _, rows, _ = reference
    scores = [float(row["defect_score"]) for row in rows.values()]
    flagged = any(row["is_defect"] == "True" for row in rows.values())
    # a threshold that moves at least one image across: above every score, or at the lowest
    other = max(scores) + 1e-3 if flagged else min(scores)

    def elsewhere(bundle):
        bundle["thresholds"][bundle["default_policy"]]["threshold"] = other

    found = _disagreements(_mutated(token_bundle, tmp_path, elsewhere), reference)
    assert found["flips"] > 0

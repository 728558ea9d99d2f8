"""A trained run stores every threshold policy and the pixel threshold in summary.json; explain
and eval decide with `threshold_policy=` or `threshold=`."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from anomaly_vit.cli.eval import evaluate
from anomaly_vit.explain.command import explain
from anomaly_vit.model.thresholds import DEFAULT_POLICIES, parse_policy
from tests.helpers import compose_config
from tests.helpers.deploy import photo_folder


@pytest.fixture(scope="module")
def summary(smoke_run_tokens):
    return json.loads((smoke_run_tokens / "summary.json").read_text())


def test_summary_holds_every_policy_with_val_and_test_counts(smoke_run_tokens, summary):
    block = summary["thresholds"]
    assert set(block["policies"]) == {parse_policy(p).name for p in DEFAULT_POLICIES}
    assert block["default_policy"] == "youden"
    n_val = len(block["validation"]["scores"])
    assert n_val == block["n_val"]["defect"] + block["n_val"]["good"]
    n_test = sum(map(sum, summary["test"]["test/confusion"]))
    for entry in block["policies"].values():
        assert sum(entry["val"][k] for k in ("tp", "fp", "tn", "fn")) == n_val
        assert sum(entry["test"][k] for k in ("tp", "fp", "tn", "fn")) == n_test
        low, high = entry["bootstrap"]["threshold"]
        assert low <= high
    # the policy the checkpoint decided with during training is the same cut, to the bit
    state = torch.load(smoke_run_tokens / "checkpoints" / "best.ckpt", weights_only=True)
    assert block["policies"]["youden"]["threshold"] == float(
        state["state_dict"]["defect_threshold"]
    )
    recall_all = block["policies"]["recall:1.0"]["val"]
    assert recall_all["fn"] == 0


def test_summary_holds_the_pixel_threshold_and_aupro(summary):
    pixel = summary["pixel_threshold"]
    assert pixel["kind"] == "tokens"
    assert pixel["method"].startswith("best per-pixel F1 on")
    assert pixel["val"]["n_images"] > 0 and pixel["test"]["n_images"] > 0
    assert pixel["test"]["aupro"] == pytest.approx(
        summary["explain"]["maps"]["tokens"]["aupro"], abs=1e-4
    )
    assert math.isfinite(summary["explain"]["baselines"]["random"]["aupro"])


def _explain(tmp_path, ckpt, folder, *overrides):
    out = tmp_path / "explain"
    result = explain(
        compose_config(
            "explain",
            [
                f"ckpt_path={ckpt}",
                f"input={folder}",
                "overlays=false",
                "kinds=[tokens]",
                *overrides,
            ],
            out,
        )
    )
    with (out / "predictions.csv").open(newline="") as handle:
        return result, list(csv.DictReader(handle))


def test_explain_decides_with_the_policy_or_number_given(smoke_run_tokens, summary, tmp_path):
    ckpt = smoke_run_tokens / "checkpoints" / "best.ckpt"
    folder = tmp_path / "photos"
    photo_folder(smoke_run_tokens, folder, classes=("crack", "good"))
    stored = summary["thresholds"]["policies"]
    for policy in ("recall:1.0", "fpr:0.05"):
        result, rows = _explain(tmp_path, ckpt, folder, f"threshold_policy={policy}")
        assert (result["threshold_policy"], result["defect_threshold"]) == (
            policy, pytest.approx(stored[policy]["threshold"]),
        )  # fmt: skip
        for row in rows:
            assert (row["is_defect"] == "True") == (
                float(row["defect_score"]) >= stored[policy]["threshold"]
            )
    scores = sorted(float(r["defect_score"]) for r in rows)
    middle = (scores[0] + scores[-1]) / 2
    result, rows = _explain(tmp_path, ckpt, folder, f"threshold={middle}")
    assert result["threshold_policy"] == "manual"
    flagged = [r["is_defect"] == "True" for r in rows]
    assert flagged == [float(r["defect_score"]) >= middle for r in rows] and 0 < sum(flagged) < len(
        rows
    )
    # a recall target not stored is chosen on the stored validation scores
    result, _ = _explain(tmp_path, ckpt, folder, "threshold_policy=recall:0.5")
    assert result["threshold_policy"] == "recall:0.5"


def test_an_unknown_policy_is_one_clear_line(smoke_run_tokens, tmp_path):
    ckpt = smoke_run_tokens / "checkpoints" / "best.ckpt"
    with pytest.raises(
        ValueError, match=r"threshold_policy='strict' is not a threshold policy: use youden, max_f1"
    ):
        _explain(tmp_path, ckpt, tmp_path, "threshold_policy=strict")


def test_eval_tests_at_the_given_threshold(smoke_run_tokens, tmp_path):
    ckpt = smoke_run_tokens / "checkpoints" / "best.ckpt"
    cfg = compose_config("eval", [f"ckpt_path={ckpt}", "threshold=1.0"], tmp_path / "eval")
    results = evaluate(cfg)
    assert results["test/defect_threshold"] == 1.0
    written = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert written["threshold_policy"] == "manual"

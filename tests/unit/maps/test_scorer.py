"""Maps scored on every defective test image with a mask: the summary.json "explain" block."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from anomaly_vit.maps.kinds import MAP_KINDS, kinds_for
from anomaly_vit.maps.scorer import (
    MapScorer,
    ScoreTable,
    SplitScorer,
    misclassified,
    summarise_scores,
    tensorboard_metrics,
)
from anomaly_vit.maps.scores import aupro
from anomaly_vit.model.module import ViTClassifier
from tests.helpers import TINY_NET, explain_tags

UNIT_SCORES = ("pointing", "energy", "pixel_auroc", "pointing_misclassified")


def _defective_test_images_with_a_mask(run_dir) -> int:
    with (run_dir / "split.csv").open(newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if r["split"] == "test" and r["source"] == "real" and r["label"] != "good"
        ]
    return sum(bool(r["mask_path"]) and np.asarray(Image.open(r["mask_path"])).any() for r in rows)


def test_a_training_run_scores_every_defective_test_image_with_baselines(smoke_run):
    block = json.loads((smoke_run / "summary.json").read_text())["explain"]
    assert block["n_scored"] == _defective_test_images_with_a_mask(smoke_run) > 0
    assert 0 <= block["n_misclassified"] <= block["n_scored"]
    expected = set(MAP_KINDS) - {"tokens"}  # the smoke model has no token head
    assert set(block["maps"]) == expected == set(block["kinds"])
    assert set(block["baselines"]) == {"random", "centre"}
    for scores in [*block["maps"].values(), *block["baselines"].values()]:
        for name in UNIT_SCORES:
            if name == "pointing_misclassified" and block["n_misclassified"] == 0:
                assert scores[name] is None
            else:
                assert 0.0 <= scores[name] <= 1.0, name
    # the centre prior is a smooth blob in the middle of 64 px demo images: better than random
    assert block["baselines"]["centre"]["pixel_auroc"] > block["baselines"]["random"]["pixel_auroc"]
    assert block["seconds"] > 0


def test_the_scores_go_to_tensorboard_hparams(smoke_run):
    block = json.loads((smoke_run / "summary.json").read_text())["explain"]
    events = EventAccumulator(str(smoke_run / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    expected = explain_tags(block)
    assert "explain/rollout/pointing" in expected and set(expected) <= metric_tags
    for tag in ("explain/rollout/energy", "explain/baseline_centre/pixel_auroc"):
        (point,) = events.Scalars(tag)
        assert point.value == pytest.approx(expected[tag], rel=1e-6), tag


def test_pointing_misclassified_averages_the_wrong_images_only():
    values = {
        "rollout": {"pointing": torch.tensor([1.0, 0.0, 1.0, 0.0]), "energy": torch.rand(4)},
        "baseline_random": {
            "pointing": torch.tensor([0.0, 0.0, 0.0, 1.0]),
            "energy": torch.rand(4),
        },
    }
    wrong = torch.tensor([False, True, True, True])
    block = summarise_scores(values, wrong)
    assert block["n_scored"] == 4 and block["n_misclassified"] == 3
    assert block["maps"]["rollout"]["pointing"] == pytest.approx(0.5)
    assert block["maps"]["rollout"]["pointing_misclassified"] == pytest.approx(1 / 3)
    assert block["baselines"]["random"]["pointing_misclassified"] == pytest.approx(1 / 3)
    none_wrong = summarise_scores(values, torch.zeros(4, dtype=torch.bool))
    assert none_wrong["n_misclassified"] == 0
    assert math.isnan(none_wrong["maps"]["rollout"]["pointing_misclassified"])
    metrics = tensorboard_metrics(none_wrong)
    assert "explain/rollout/pointing_misclassified" not in metrics  # NaN is not logged
    assert metrics["explain/baseline_random/pointing"] == pytest.approx(0.25)


def _model(classes=("good", "scratch", "stain")) -> ViTClassifier:
    torch.manual_seed(0)
    return ViTClassifier(list(classes), dict(TINY_NET)).eval()


def test_misclassified_reads_the_stored_threshold_and_the_defect_class():
    model = _model()
    images = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probs = model(images).softmax(dim=-1)
    scores, preds = 1 - probs[:, 0], probs.argmax(dim=-1)
    model.defect_threshold.fill_(float(scores.median()))
    below = scores < model.defect_threshold
    right_class = torch.where(preds == 0, 1, preds)  # the label the model predicts (or scratch)
    assert torch.equal(misclassified(model, images, right_class), below)
    other_class = 3 - right_class  # scratch <-> stain: wrong whenever a defect class is predicted
    expected = below | (preds != 0)
    assert torch.equal(misclassified(model, images, other_class), expected)
    assert torch.equal(misclassified(model, images, torch.full((6,), -1)), below)
    # the probabilities of an explanation's forward pass give the same answer without a new one
    assert torch.equal(misclassified(model, images, other_class, probs), expected)


def test_split_scorer_scores_only_defective_images_with_a_mask():
    model = _model()
    images = torch.randint(0, 256, (5, 3, 32, 32), generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 1, 0])
    masks = torch.zeros(5, 32, 32, dtype=torch.bool)
    masks[1, 4:12, 4:12] = masks[2, 20:, 20:] = masks[4, :8, :8] = True  # image 3: no mask
    model.defect_threshold.fill_(2.0)  # every image reads as good: all misclassified
    block = SplitScorer(kinds=["rollout"], batch_size=1, device="cpu").score(
        model, images, labels, masks
    )
    assert block["n_scored"] == 2 and block["n_misclassified"] == 2
    assert (
        block["maps"]["rollout"]["pointing_misclassified"] == block["maps"]["rollout"]["pointing"]
    )
    empty = SplitScorer(kinds=["rollout"]).score(model, images, labels, torch.zeros_like(masks))
    assert empty["n_scored"] == 0 and math.isnan(empty["maps"]["rollout"]["pointing"])
    assert math.isnan(empty["baselines"]["centre"]["energy"])


def test_aupro_is_one_score_of_every_kept_image_across_batches():
    """AUPRO is a score of the set: the block's value is AUPRO over the kept images of all
    batches (not a mean of per-image values), for each kind and each baseline."""
    model = _model(("good", "defect"))
    generator = torch.Generator().manual_seed(3)
    masks = torch.zeros(3, 32, 32, dtype=torch.bool)
    masks[0, 2:10, 2:10] = masks[1, 16:30, 4:12] = masks[2, 20:28, 20:28] = True
    maps = {"rollout": torch.rand(3, 32, 32, generator=generator)}
    maps["rollout"][0, 2:10, 2:10] += 0.8  # found in image 0 only: batches differ
    scorer, table = MapScorer(["rollout"]), ScoreTable(["rollout"])
    kept = {kind: [] for kind in table.kinds}
    for first, keep in ((0, [True]), (1, [True, False])):  # image 2 is not kept
        batch_maps = scorer.with_baselines(
            {"rollout": maps["rollout"][first : first + len(keep)]},
            masks[first : first + len(keep)],
            seed=first,
        )
        per_image = scorer.score_images(
            model, batch_maps, masks[first : first + len(keep)], seed=first
        )
        keep_b = torch.tensor(keep)
        table.add(per_image, None, keep_b, batch_maps, masks[first : first + len(keep)])
        for kind, maps_bhw in batch_maps.items():
            kept[kind].append(maps_bhw[keep_b])
    block = table.block()
    for kind, name in (
        ("rollout", None),
        ("baseline_random", "random"),
        ("baseline_centre", "centre"),
    ):
        scores = block["maps"][kind] if name is None else block["baselines"][name]
        expected = aupro(torch.cat(kept[kind]), masks[:2])
        assert scores["aupro"] == pytest.approx(expected, abs=1e-12), kind
    each = aupro(maps["rollout"][:1], masks[:1]), aupro(maps["rollout"][1:2], masks[1:2])
    assert block["maps"]["rollout"]["aupro"] != pytest.approx(sum(each) / 2)  # not a mean
    probes = ScoreTable(["rollout"])  # the callback's probes: scores without their maps
    probes.add(per_image, None, keep_b)
    assert "aupro" not in probes.block()["maps"]["rollout"]


def test_token_kinds_are_skipped_without_a_token_head():
    plain = _model(("good", "defect"))
    assert "tokens" not in kinds_for(plain, None)
    assert kinds_for(plain, None) == [k for k in MAP_KINDS if not MAP_KINDS[k].needs_token_head]
    torch.manual_seed(0)
    guided = ViTClassifier(["good", "defect"], dict(TINY_NET), mask_loss={"weight": 1.0})
    assert kinds_for(guided, None) == list(MAP_KINDS)
    # a model with a token head always gets its own map beside the configured kinds
    assert kinds_for(guided, ["contrast"]) == ["contrast", "tokens"]
    assert kinds_for(plain, ["contrast"]) == ["contrast"]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"split": "holdout"}, "explain_scores: split 'holdout'"),
        ({"batch_size": 0}, "explain_scores.batch_size"),
        ({"kinds": ["rollout", "gradcam"]}, "explain_scores.kinds"),
        ({"head_fusion": "median"}, "explain_scores.head_fusion"),
        ({"discard_ratio": 1.0}, "explain_scores.discard_ratio"),
    ],
)
def test_bad_settings_name_their_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SplitScorer(**kwargs)

"""`python -m anomaly_vit.explain`: overlays and predictions.csv of the smoke checkpoint on images."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_vit.explain.checkpoint import load_classifier
from anomaly_vit.explain.command import BASE_COLUMNS, SCORE_NAMES, explain
from anomaly_vit.explain.inputs import find_inputs
from tests.helpers import compose_config, run_cli

KINDS = ["contrast", "evidence"]  # the default `kinds` of conf/explain.yaml
SCORE_COLUMNS = [f"{kind}/{name}" for kind in KINDS for name in SCORE_NAMES]


def _demo(smoke_run):
    return smoke_run.parents[2] / "data" / "demo_smoke"


def _first(folder, n):
    return sorted(folder.glob("*.png"))[:n]


@pytest.fixture
def class_tree(tmp_path, smoke_run):
    """input/{good,scratch}/ with 2 images each; a mask for the first scratch image only."""
    demo = _demo(smoke_run)
    root, masks = tmp_path / "input", tmp_path / "masks"
    for label in ("good", "scratch"):
        (root / label).mkdir(parents=True)
        for path in _first(demo / "left" / label, 2):
            shutil.copy(path, root / label / path.name)
    scratch = sorted((root / "scratch").iterdir())[0]
    (masks / "scratch").mkdir(parents=True)
    shutil.copy(
        demo / "masks" / "left" / "scratch" / scratch.name, masks / "scratch" / scratch.name
    )
    return root, masks, scratch


def _run(tmp_path, *overrides):
    out = tmp_path / "explain"
    cfg = compose_config("explain", list(overrides), out)
    return explain(cfg), out


def _rows(out):
    with (out / "predictions.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_class_tree_gives_overlays_labels_predictions_and_scores(tmp_path, smoke_run, class_tree):
    root, masks, scratch = class_tree
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    summary, out = _run(tmp_path, f"ckpt_path={ckpt}", f"input={root}", f"masks={masks}")
    columns, rows = _rows(out)
    assert columns == [*BASE_COLUMNS, *SCORE_COLUMNS]
    names = sorted(f"{p.parent.name}/{p.stem}" for p in root.rglob("*.png"))
    assert sorted(r["overlay"] for r in rows) == [f"overlays/{n}.png" for n in names]
    for row in rows:
        assert (out / row["overlay"]).is_file()
        assert row["true_label"] == row["path"].split("/")[-2]
    # the numbers are the model's: same prediction and probability on the 64 px image
    model, _ = load_classifier(ckpt)
    threshold = float(model.defect_threshold)
    for row in rows:
        image = Image.open(row["path"]).convert("RGB").resize((64, 64), Image.BILINEAR)
        images = torch.tensor(np.asarray(image)).permute(2, 0, 1)[None]
        with torch.no_grad():
            probs = model(images).softmax(dim=-1)[0]
        assert row["predicted"] == model.classes[int(probs.argmax())]
        assert float(row["probability"]) == pytest.approx(float(probs.max()), abs=1e-5)
        assert float(row["defect_score"]) == pytest.approx(1 - float(probs[0]), abs=1e-5)
        assert row["is_defect"] == str(float(row["defect_score"]) >= threshold)
    # scores where a mask exists, empty cells where not
    for row in rows:
        masked = row["path"] == str(scratch)
        assert row["has_mask"] == str(masked)
        assert all((row[c] != "") == masked for c in SCORE_COLUMNS), row["path"]
    scored = next(r for r in rows if r["has_mask"] == "True")
    for kind in KINDS:
        assert 0.0 <= float(scored[f"{kind}/energy"]) <= 1.0
        assert 0.0 <= float(scored[f"{kind}/pixel_auroc"]) <= 1.0
        assert 0.0 <= float(scored[f"{kind}/pointing"]) <= 1.0  # a share when maxima tie
    assert summary["n_images"] == 4 and summary["n_scored"] == 1 and summary["n_labelled"] == 4
    written = json.loads((out / "summary.json").read_text())
    assert written["scores"]["evidence"]["energy"] == pytest.approx(
        float(scored["evidence/energy"])
    )
    assert set(written["scores"]) == {*KINDS, "baseline_random", "baseline_centre"}
    # the same "explain" block as a training run's summary.json, on the one masked image
    block = written["explain"]
    wrong = scored["is_defect"] == "False" or scored["predicted"] not in ("good", "scratch")
    assert block["n_scored"] == 1 and block["n_misclassified"] == int(wrong)
    assert set(block["maps"]) == set(KINDS) and set(block["baselines"]) == {"random", "centre"}
    for kind in KINDS:
        assert block["maps"][kind]["pointing"] == pytest.approx(float(scored[f"{kind}/pointing"]))
        shown = block["maps"][kind]["pointing_misclassified"]
        assert shown == (pytest.approx(float(scored[f"{kind}/pointing"])) if wrong else None)
    assert block["baselines"]["centre"]["energy"] == pytest.approx(
        written["scores"]["baseline_centre"]["energy"]
    )


def _crack_and_good(tmp_path, smoke_run, good_mask: str = ""):
    """Explain a manifest of one demo crack (with its mask) and one good image (`good_mask`),
    rollout only, no overlays: (crack, good, summary, output dir)."""
    demo = _demo(smoke_run)
    crack = _first(demo / "right" / "crack", 1)[0]
    good = _first(demo / "right" / "good", 1)[0]
    mask = demo / "masks" / "right" / "crack" / crack.name
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        f"path,label,item_id,mask\n{crack},crack,a,{mask}\n{good},good,b,{good_mask}\n",
        encoding="utf-8",
    )
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    summary, out = _run(
        tmp_path, f"ckpt_path={ckpt}", f"input={manifest}", "overlays=false", "kinds=[rollout]"
    )
    return crack, good, summary, out


def test_manifest_rows_keep_their_labels_and_masks(tmp_path, smoke_run):
    crack, good, summary, out = _crack_and_good(tmp_path, smoke_run)
    _, rows = _rows(out)
    assert [(r["path"], r["true_label"], r["has_mask"]) for r in rows] == [
        (str(crack), "crack", "True"),
        (str(good), "good", "False"),
    ]
    assert rows[0]["rollout/energy"] != "" and rows[1]["rollout/energy"] == ""
    assert not (out / "overlays").exists()
    assert summary["n_scored"] == 1


def test_plain_folder_has_no_labels(tmp_path, smoke_run):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, path in enumerate(_first(_demo(smoke_run) / "left" / "stain", 2)):
        shutil.copy(path, folder / f"shot_{index}.png")
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    summary, out = _run(tmp_path, f"ckpt_path={ckpt}", f"input={folder}", "overlays=false")
    _, rows = _rows(out)
    assert [r["true_label"] for r in rows] == ["", ""]
    assert [r["has_mask"] for r in rows] == ["False", "False"]
    assert "acc" not in summary


def test_bad_inputs_name_the_file(tmp_path, smoke_run):
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"input={missing} does not exist"):
        _run(tmp_path, f"ckpt_path={ckpt}", f"input={missing}")
    folder = tmp_path / "broken"
    folder.mkdir()
    shutil.copy(_first(_demo(smoke_run) / "left" / "good", 1)[0], folder / "fine.png")
    (folder / "corrupt.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="corrupt.png"):
        _run(tmp_path, f"ckpt_path={ckpt}", f"input={folder}", "overlays=false")
    summary, out = _run(
        tmp_path, f"ckpt_path={ckpt}", f"input={folder}", "overlays=false", "on_bad_image=skip"
    )
    assert summary["n_images"] == 1 and summary["skipped"][0]["path"].endswith("corrupt.png")
    with pytest.raises(FileNotFoundError, match="ckpt_path="):
        _run(tmp_path, f"ckpt_path={tmp_path / 'none.ckpt'}", f"input={folder}")


def test_inputs_find_masks_by_relative_path_or_closest_folders(tmp_path):
    def png(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(path)

    for view in ("left", "right"):
        png(tmp_path / "data" / view / "scratch" / "a.png")
        png(tmp_path / "data" / "masks" / view / "scratch" / "a.png")
    png(tmp_path / "data" / "left" / "good" / "b.jpg")
    # input=data: masks default to data/masks (not read as inputs), matched by relative path
    items = find_inputs(tmp_path / "data", classes=["good", "scratch"])
    assert [(i.name, i.label) for i in items] == [
        ("left/good/b", "good"),
        ("left/scratch/a", "scratch"),
        ("right/scratch/a", "scratch"),
    ]
    assert [i.mask_path for i in items] == [
        None,
        tmp_path / "data" / "masks" / "left" / "scratch" / "a.png",
        tmp_path / "data" / "masks" / "right" / "scratch" / "a.png",
    ]
    # input=data/left: two masks are named a.png, the one under masks/left/scratch matches best
    items = find_inputs(tmp_path / "data" / "left", tmp_path / "data" / "masks", ["scratch"])
    assert [i.label for i in items] == [None, None]  # "good" is not a class of this model
    assert items[1].mask_path == tmp_path / "data" / "masks" / "left" / "scratch" / "a.png"
    with pytest.raises(FileNotFoundError, match="masks="):
        find_inputs(tmp_path / "data", tmp_path / "no_masks")


@pytest.mark.slow
def test_cli_writes_overlays_and_predictions(tmp_path, smoke_run, class_tree):
    root, masks, _ = class_tree
    out = tmp_path / "cli"
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    result = run_cli(
        "anomaly_vit.explain",
        f"ckpt_path={ckpt}",
        f"input={root}",
        f"masks={masks}",
        f"hydra.run.dir={out}",
    )
    assert f"written to {out}" in result.stdout
    _, rows = _rows(out)
    assert len(rows) == 4 and len(list((out / "overlays").rglob("*.png"))) == 4
    assert (out / ".hydra" / "config.yaml").is_file()
    failed = run_cli(
        "anomaly_vit.explain",
        f"ckpt_path={ckpt}",
        f"input={tmp_path / 'nowhere'}",
        f"hydra.run.dir={tmp_path / 'failed'}",
        check=False,
    )
    assert failed.returncode == 1
    assert "does not exist" in failed.stderr and "Traceback" not in failed.stderr


def test_inputs_are_fitted_like_the_checkpoints_training(tmp_path):
    from anomaly_vit.data.resize import ResizeMode
    from anomaly_vit.explain.inputs import InputImage, load_input, training_resize

    image = np.full((40, 16, 3), 200, np.uint8)  # a tall photo, like KolektorSDD's
    mask = np.zeros((40, 16), np.uint8)
    mask[:, 12:] = 255  # the right quarter
    Image.fromarray(image).save(tmp_path / "x.png")
    Image.fromarray(mask).save(tmp_path / "x_mask.png")
    item = InputImage(tmp_path / "x.png", "x", mask_path=tmp_path / "x_mask.png")
    assert training_resize({"config": {"data": {"resize": "letterbox"}}}) is ResizeMode.LETTERBOX
    assert training_resize({}) is ResizeMode.SQUASH  # checkpoints from before data.resize
    boxed, boxed_mask = load_input(item, (32, 32), ResizeMode.LETTERBOX)
    assert boxed[:, :8].max() == 0 and boxed[:, 24:].max() == 0  # padded, aspect kept
    assert boxed[:, 10:20].min() == 200  # 40x16 -> 32x13 in the middle
    mask_columns = np.flatnonzero(boxed_mask.any(axis=0))
    assert mask_columns.min() >= 18 and mask_columns.max() <= 22  # the photo's right quarter
    squashed, squashed_mask = load_input(item, (32, 32), ResizeMode.SQUASH)
    assert squashed.min() == 200 and squashed_mask[:, 25:].all()


def test_an_image_whose_mask_is_empty_is_not_scored(tmp_path, smoke_run):
    """A mask with no defect pixel: has_mask, but nothing to point at (blank cells, not scored)."""
    empty = tmp_path / "empty.png"
    Image.new("L", (64, 64), 0).save(empty)
    _, _, summary, out = _crack_and_good(tmp_path, smoke_run, good_mask=str(empty))
    _, rows = _rows(out)
    assert [r["has_mask"] for r in rows] == ["True", "True"]
    columns = [f"rollout/{name}" for name in SCORE_NAMES]
    assert all(rows[0][c] != "" for c in columns) and all(rows[1][c] == "" for c in columns)
    assert summary["n_scored"] == 1 == summary["explain"]["n_scored"]

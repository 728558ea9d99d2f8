"""`python -m anomaly_vit.cv` in process on a tiny generated set: folds by item, every photo
pooled once, resume without rerunning a finished fold, cv.only / cv.aggregate, bad cv.folds,
a fold whose validation part has no defect, and the peer arm on the same folds."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from torchmetrics.functional.classification import binary_auroc

import anomaly_vit.cli.cv as cv_cli
from anomaly_vit.compose import compose
from anomaly_vit.crossval.pooled import OOF_COLUMNS
from anomaly_vit.errors import UserError
from tests.helpers.defect_set import cv_overrides, make_defect_set

FOLDS = 3


def _cv(root: Path, cv_dir: Path, *extra: str):
    manifest = root / "data" / "manifest.csv"
    cfg = compose("cv", cv_overrides(manifest, root, f"cv.folds={FOLDS}", *extra), cv_dir)
    return cv_cli.cross_validate(cfg)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cv_root")
    make_defect_set(root / "data")  # 8 good + 4 defective items, 2 photos each
    return root


@pytest.fixture(scope="module")
def vit_cv(root) -> tuple[Path, dict, list[str]]:
    """One 3-fold ViT cv (1 epoch a fold); the warnings it logged."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("anomaly_vit").addHandler(handler)
    try:
        summary = _cv(root, root / "cv_vit")
    finally:
        logging.getLogger("anomaly_vit").removeHandler(handler)
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    return root / "cv_vit", summary, warnings


def test_every_photo_is_scored_once_by_the_fold_that_held_its_item_out(root, vit_cv):
    cv_dir, summary, _ = vit_cv
    manifest = _rows(root / "data" / "manifest.csv")
    oof = _rows(cv_dir / "oof_scores.csv")
    assert list(oof[0]) == list(OOF_COLUMNS)
    assert sorted(r["path"] for r in oof) == sorted(
        str(root / "data" / m["path"]) for m in manifest
    )
    fold_of_item = {r["item_id"]: int(r["fold"]) for r in _rows(cv_dir / "folds.csv")}
    assert {r["item"]: int(r["fold"]) for r in oof} == fold_of_item  # one fold per item
    for fold in range(FOLDS):
        split = {r["item_id"]: r["split"] for r in _rows(cv_dir / "splits" / f"fold_{fold}.csv")}
        trained = {r["item_id"] for r in _rows(cv_dir / f"fold_{fold}" / "split.csv")
                   if r["split"] in ("train", "val")}  # fmt: skip
        tested = {r["item"] for r in oof if int(r["fold"]) == fold}
        assert tested == {i for i, s in split.items() if s == "test"} and not tested & trained
    pooled = summary["pooled"]
    assert (pooled["n_images"], pooled["n_defect"]) == (24, 4)
    scores = np.array([float(r["score"]) for r in oof])
    truth = np.array([int(r["is_defect"]) for r in oof])
    assert pooled["auroc"] == pytest.approx(float(binary_auroc(_t(scores), _t(truth))))
    predicted = np.array([int(r["predicted"]) for r in oof], bool)
    recalls = (predicted[truth == 1].mean() + (~predicted[truth == 0]).mean()) / 2
    assert pooled["balanced_acc"] == pytest.approx(recalls)
    assert [row["fold"] for row in summary["folds"]] == list(range(FOLDS))
    assert sum(row["n"] for row in summary["folds"]) == 24
    assert summary["maps"]["n_scored"] == 4  # every defective photo has a mask
    on_disk = json.loads((cv_dir / "cv_summary.json").read_text())
    assert on_disk["pooled"]["n_images"] == 24 and (cv_dir / "cv.png").stat().st_size > 0


def _t(values):
    import torch

    return torch.as_tensor(values)


def test_a_fold_without_defects_in_validation_is_warned_and_names_its_threshold(vit_cv):
    cv_dir, summary, warnings = vit_cv
    # fold 0 tests 2 of the 4 defective items: the other 2 are too few to carve one out
    lonely = [row for row in summary["folds"] if row["val_defect_items"] == 0]
    assert [row["fold"] for row in lonely] == [0]
    assert lonely[0]["threshold_from"] == cv_cli.FALLBACK and lonely[0]["threshold"] == 0.5
    assert [row["threshold_from"] for row in summary["folds"][1:]] == ["validation"] * 2
    assert any(
        "fold 0" in w and "no defective item" in w and cv_cli.FALLBACK in w for w in warnings
    )


def test_an_interrupted_cv_reruns_only_the_unfinished_fold(root, vit_cv, tmp_path, monkeypatch):
    cv_dir = tmp_path / "cv"
    shutil.copytree(vit_cv[0], cv_dir)
    (cv_dir / "fold_1" / "cv_fold.json").unlink()  # fold 1 stopped before its row was written
    shutil.rmtree(cv_dir / "fold_2")  # fold 2 never started
    (cv_dir / "cv_summary.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in (cv_dir / "fold_0").rglob("*") if p.is_file()}
    ran = []
    real_vit = cv_cli.ARMS[cv_cli.Arm.VIT]
    monkeypatch.setitem(
        cv_cli.ARMS, cv_cli.Arm.VIT, lambda cfg, s: ran.append(cfg) or real_vit(cfg, s)
    )
    summary = _cv(root, cv_dir, f"cv.dir={cv_dir}")
    assert [Path(c.paths.output_dir).name for c in ran] == ["fold_1", "fold_2"]
    assert ran[0].ckpt_path == str(cv_dir / "fold_1" / "checkpoints" / "last.ckpt")  # resumed
    assert ran[1].ckpt_path is None
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # fold 0 untouched
    assert summary["pooled"]["n_images"] == 24 and summary["pooled"]["missing_folds"] == []


def test_only_some_folds_then_aggregate_pools_what_is_there(root, tmp_path, capsys):
    cv_dir = tmp_path / "cv"
    assert _cv(root, cv_dir, "cv.only=[1]") is None
    assert "fold(s) [0, 2] of 3 are not finished" in capsys.readouterr().out
    assert not (cv_dir / "cv_summary.json").exists()
    peer_overrides = cv_overrides(root / "data" / "manifest.csv", root, "cv.folds=3", "cv.arm=peer")
    peer = compose("cv", peer_overrides, cv_dir)
    with pytest.raises(ValueError, match=r"cv\.arm=peer but cv\.dir=.* holds the vit arm's folds"):
        cv_cli.cross_validate(peer)  # its scores would be pooled with the ViT's
    # the aggregate call names no data or arm: the folder's own config says what it holds
    summary = cv_cli.cross_validate(compose("cv", ["cv.aggregate=true"], cv_dir))
    assert summary["config"]["arm"] == "vit" and summary["config"]["data"]["name"] == "manifest"
    assert summary["pooled"]["missing_folds"] == [0, 2] and summary["pooled"]["folds_pooled"] == [1]
    assert summary["pooled"]["n_images"] == summary["folds"][0]["n"] == 8
    assert "missing fold(s): [0, 2]" in capsys.readouterr().out
    (cv_dir / "cv_config.json").unlink()  # a folder made before cv_config.json existed
    again = cv_cli.cross_validate(compose("cv", ["cv.aggregate=true"], cv_dir))
    assert again["config"] == summary["config"]  # read back from its cv_summary.json


@pytest.mark.parametrize(
    ("folds", "message"),
    [
        (1, "cv.folds=1: must be an integer >= 2"),
        (5, "cv.folds=5 is more than the 4 defective item(s) of the data (12 items)"),
    ],
)
def test_a_bad_fold_count_is_one_line_before_anything_trains(
    root, tmp_path, folds, message, capsys, monkeypatch
):
    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    cv_dir = tmp_path / "cv"
    manifest = root / "data" / "manifest.csv"
    cfg = compose("cv", cv_overrides(manifest, root, f"cv.folds={folds}"), cv_dir)
    with pytest.raises(UserError) as raised:
        cv_cli.cross_validate(cfg)
    assert message in raised.value.message
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and message in err[0]
    assert sorted(p.name for p in cv_dir.iterdir()) == []  # no folds.csv, no fold dir


@pytest.fixture(scope="module")
def peer_cv(root) -> tuple[Path, dict]:
    overrides = ("cv.arm=peer", "cv.peer.epochs=1", "cv.peer.img_size=16")
    return root / "cv_peer", _cv(root, root / "cv_peer", *overrides)


def test_the_peer_arm_scores_the_same_photos_in_the_same_folds(vit_cv, peer_cv):
    cv_dir, summary = peer_cv
    vit_rows = _rows(vit_cv[0] / "oof_scores.csv")
    peer_rows = _rows(cv_dir / "oof_scores.csv")
    assert list(peer_rows[0]) == list(OOF_COLUMNS)
    same = ("path", "item", "fold", "label", "is_defect")
    assert sorted(tuple(r[k] for k in same) for r in peer_rows) == sorted(
        tuple(r[k] for k in same) for r in vit_rows
    )
    assert summary["config"]["arm"] == "peer" and summary["pooled"]["n_images"] == 24
    assert all(row["input_hw"] == [16, 16] for row in summary["folds"])
    assert summary["folds"][0]["threshold_from"] == cv_cli.FALLBACK


def test_the_bench_tabulates_both_arms_and_flags_other_folds(vit_cv, peer_cv, tmp_path, capsys):
    from anomaly_vit.bench.runner import run_bench
    from anomaly_vit.bench.settings import bench_settings

    shuffled = tmp_path / "cv_other_folds"
    shutil.copytree(peer_cv[0], shuffled)
    rows = _rows(shuffled / "oof_scores.csv")
    for row in rows:
        row["fold"] = str((int(row["fold"]) + 1) % FOLDS)  # same photos, other folds
    with (shuffled / "oof_scores.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(OOF_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    perfect = tmp_path / "cv_perfect_peer"  # a stronger peer on the same folds
    shutil.copytree(peer_cv[0], perfect)
    rows = _rows(perfect / "oof_scores.csv")
    for row in rows:
        row["score"] = row["is_defect"]
    with (perfect / "oof_scores.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(OOF_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    summary = json.loads((perfect / "cv_summary.json").read_text())
    summary["pooled"]["auroc"] = 1.0
    (perfect / "cv_summary.json").write_text(json.dumps(summary))
    dirs = [vit_cv[0], peer_cv[0], shuffled, perfect]
    out = tmp_path / "bench"
    cfg = compose("bench", ["bench=real_cv", f"real_cv.cv_dirs=[{','.join(map(str, dirs))}]"], out)
    run_bench(bench_settings(cfg), out)
    printed = capsys.readouterr().out
    payload = json.loads((out / "bench.json").read_text())
    vit_row, peer_row, other_row, perfect_row = payload["rows"]
    vit, peer = vit_cv[1]["pooled"], peer_cv[1]["pooled"]
    assert vit_row["value"] == pytest.approx(vit["auroc"])
    assert vit_row["target"] == {"op": ">=", "value": 1.0}  # the strongest peer on its folds
    assert peer_row["target"] is None
    details = [r["details"] for r in payload["rows"]]
    assert [d["same_folds_as"] for d in details] == [
        None,
        "cv_vit",
        "NOT cv_vit (same photos, other folds)",
        "cv_vit",
    ]
    minus = details[0]["minus_peer"]
    assert minus["peer_dir"] == str(perfect) and details[1]["minus_peer"] is None
    assert minus["auroc"]["diff"] == pytest.approx(vit["auroc"] - 1.0)
    low, high = peer["balanced_acc_ci"]
    shown = f"{peer['balanced_acc']:.3f} [{low:.3f}, {high:.3f}]"
    assert shown in printed and shown in (out / "bench.md").read_text()


def test_a_cv_folder_keeps_its_folds_when_items_are_added(root, vit_cv, tmp_path, caplog):
    cv_dir = tmp_path / "cv"
    shutil.copytree(vit_cv[0], cv_dir, ignore=shutil.ignore_patterns("fold_*"))
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    shutil.copy(data / "images" / "item000_0.png", data / "images" / "new_0.png")
    with (data / "manifest.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(["images/new_0.png", "good", "item_new", "view0", ""])
    recorded = {r["item_id"]: int(r["fold"]) for r in _rows(cv_dir / "folds.csv")}
    overrides = cv_overrides(data / "manifest.csv", root, f"cv.folds={FOLDS}", "cv.seed=7")
    plan = cv_cli._plan(compose("cv", overrides, cv_dir), cv_dir)
    assert plan.fold_of_item == recorded  # another fold seed: still the recorded folds
    assert "item_new" not in plan.fold_of_item
    assert any("1 item(s) are not in folds.csv" in r.getMessage() for r in caplog.records)
    other = cv_overrides(data / "manifest.csv", root, "cv.folds=4")
    with pytest.raises(ValueError, match=r"cv\.folds=4 but .*folds\.csv holds 3 folds"):
        cv_cli._plan(compose("cv", other, cv_dir), cv_dir)

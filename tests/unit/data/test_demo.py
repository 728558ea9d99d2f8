"""Tests of the built-in demo data set: layout, determinism, masks, difficulty, caching."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.data.demo import (
    DEFAULT_CLASSES,
    GOOD,
    PARAMS_FILE,
    README_FILE,
    VIEWS,
    class_assignment,
    ensure_demo,
    generate_demo,
    main,
    render_item,
    sample_item_spec,
)

SMALL = {"n_items": 40, "image_size": 64, "seed": 0, "progress": False}


def _digest(root: Path) -> str:
    """One hash over every file's relative path and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("demo") / "small", **SMALL)


def test_same_seed_same_bytes_other_seed_differs(small_set: Path, tmp_path: Path) -> None:
    again = generate_demo(tmp_path / "again", **SMALL)
    other = generate_demo(tmp_path / "other", **{**SMALL, "seed": 1})
    assert _digest(again) == _digest(small_set)
    assert _digest(other) != _digest(small_set)


def test_layout_pairs_masks_sizes_and_balance(small_set: Path) -> None:
    size = SMALL["image_size"]
    lefts = sorted(p.relative_to(small_set / "left") for p in (small_set / "left").rglob("*.png"))
    rights = sorted(
        p.relative_to(small_set / "right") for p in (small_set / "right").rglob("*.png")
    )
    assert lefts == rights and len(lefts) == SMALL["n_items"]
    counts = Counter(p.parent.name for p in lefts)
    assert set(counts) == set(DEFAULT_CLASSES)
    assert max(counts.values()) - min(counts.values()) <= 1
    for rel in lefts:
        assert rel.stem.startswith("item_") and len(rel.stem) == len("item_00000")
        for view in VIEWS:
            with Image.open(small_set / view / rel) as img:
                assert img.mode == "RGB" and img.size == (size, size)
            mask_path = small_set / "masks" / view / rel
            if rel.parent.name == GOOD:
                assert not mask_path.exists()
                continue
            with Image.open(mask_path) as mask:
                assert mask.mode == "L" and mask.size == (size, size)
                assert set(np.unique(np.asarray(mask)).tolist()) == {0, 255}
    assert not (small_set / "masks" / "left" / GOOD).exists()
    readme = (small_set / README_FILE).read_text()
    assert "seed 0" in readme and "40 items" in readme
    assert json.loads((small_set / PARAMS_FILE).read_text())["n_items"] == SMALL["n_items"]


def test_other_image_size(tmp_path: Path) -> None:
    out = generate_demo(tmp_path / "s48", n_items=8, image_size=48, progress=False)
    for path in out.rglob("*.png"):
        with Image.open(path) as img:
            assert img.size == (48, 48)


def test_masks_cover_the_defects(small_set: Path) -> None:
    """Masks have a small area, sit where the defect changes pixels, and nowhere else."""
    labels = class_assignment(SMALL["n_items"], DEFAULT_CLASSES, SMALL["seed"])
    for index, label in enumerate(labels):
        spec = sample_item_spec(SMALL["seed"], index, label, SMALL["image_size"])
        defective, clean = render_item(spec), render_item(spec, defect=False)
        for view in VIEWS:
            image, mask = defective[view]
            stored = _read(small_set / view / label / f"item_{index:05d}.png")
            np.testing.assert_array_equal(image, stored)  # the files are these renderings
            diff = np.abs(image.astype(int) - clean[view][0].astype(int)).max(axis=-1)
            if label == GOOD:
                assert mask is None and diff.max() == 0
                continue
            stored_mask = _read(small_set / "masks" / view / label / f"item_{index:05d}.png")
            np.testing.assert_array_equal(stored_mask > 0, mask)
            assert 0.003 <= mask.mean() <= 0.06, (index, view, mask.mean())
            assert diff[mask].mean() >= 12, (index, view, diff[mask].mean())
            near = mask.copy()  # grow the mask by 3 px: blur spreads a defect a little
            for _ in range(3):
                near = near | np.roll(near, 1, 0) | np.roll(near, -1, 0)
                near = near | np.roll(near, 1, 1) | np.roll(near, -1, 1)
            assert diff[~near].max() <= 1, (index, view)


def test_nuisance_does_not_depend_on_class() -> None:
    """An item drawn as any class looks the same once its defect is switched off."""
    renders = [
        render_item(sample_item_spec(3, 5, label), defect=False)["left"][0]
        for label in DEFAULT_CLASSES
    ]
    for other in renders[1:]:
        np.testing.assert_array_equal(renders[0], other)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_raw_pixel_logistic_regression_stays_weak(tmp_path: Path) -> None:
    """The demo task is not trivial: a linear model on raw pixels stays far from solving it.

    Split by item (60% train, 20% test, stratified); both views of an item are samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    out = generate_demo(tmp_path / "lr", n_items=400, seed=0, progress=False)
    pixels, labels = [], []
    for class_index, label in enumerate(DEFAULT_CLASSES):
        for path in sorted((out / "left" / label).glob("*.png")):
            views = [_read(out / view / label / path.name) for view in VIEWS]
            pixels.append(np.stack(views).reshape(len(VIEWS), -1).astype(np.float32))
            labels.append(class_index)
    x_items, y_items = np.stack(pixels), np.array(labels)  # (items, views, features), (items,)
    items = np.arange(len(y_items))
    train, rest = train_test_split(items, train_size=0.6, stratify=y_items, random_state=0)
    _, test = train_test_split(rest, train_size=0.5, stratify=y_items[rest], random_state=0)

    def views_of(ix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x_items[ix].reshape(-1, x_items.shape[-1]), np.repeat(y_items[ix], len(VIEWS))

    (x_train, y_train), (x_test, y_test) = views_of(train), views_of(test)
    scaler = StandardScaler().fit(x_train)
    with threadpool_limits(1):  # one BLAS thread: ten times faster on a busy machine
        model = LogisticRegression(max_iter=100).fit(scaler.transform(x_train), y_train)
    accuracy = balanced_accuracy_score(y_test, model.predict(scaler.transform(x_test)))
    assert accuracy < 0.60, accuracy


def test_ensure_demo_regenerates_only_when_needed(tmp_path: Path) -> None:
    out = tmp_path / "cached"
    kwargs = {"n_items": 8, "seed": 0, "progress": False}
    ensure_demo(out, **kwargs)
    old = 10**18  # ns since the epoch: set every file's mtime to a stamp no rewrite can keep
    for path in out.rglob("*"):
        os.utime(path, ns=(old, old))

    assert ensure_demo(out, **kwargs) == out
    assert all(path.stat().st_mtime_ns == old for path in out.rglob("*"))

    ensure_demo(out, **{**kwargs, "n_items": 12})  # other parameters: regenerate
    assert json.loads((out / PARAMS_FILE).read_text())["n_items"] == 12
    assert len(list((out / "left").rglob("*.png"))) == 12
    assert all(path.stat().st_mtime_ns != old for path in out.rglob("*.png"))

    (out / PARAMS_FILE).unlink()  # an interrupted generation: redo it
    ensure_demo(out, **{**kwargs, "n_items": 12})
    assert (out / PARAMS_FILE).is_file()


def test_refuses_folders_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "photos.txt").write_text("not demo data")
    with pytest.raises(FileExistsError, match="photos.txt"):
        generate_demo(tmp_path, n_items=4, progress=False)
    with pytest.raises(ValueError, match="dent"):
        generate_demo(tmp_path / "new", n_items=4, classes=("good", "dent"), progress=False)


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    main(["--out", str(out), "--n-items", "6", "--size", "32", "--no-progress"])
    assert len(list((out / "right").rglob("*.png"))) == 6
    assert json.loads((out / PARAMS_FILE).read_text())["image_size"] == 32

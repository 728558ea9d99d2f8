"""The catalogue of bad inputs, end to end through `train(cfg)` (or the datamodule): each one
gives one clear line naming the file or config key and what to do; skippable files leave the
run training on the rest and are listed in data_report.json."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.build import build_datamodule
from anomaly_vit.data.image_io import BadImageError
from anomaly_vit.errors import UserError
from anomaly_vit.train import train
from tests.helpers import SIZE_PX, compose_config, paired_tree, tiny
from tests.helpers.data import CLASSES


def user_error(monkeypatch, overrides: list[str], run_dir: Path) -> str:
    """The one-line message `train` shows the user (task_wrapper's path, not pytest's)."""
    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    cfg = compose_config("train", overrides, run_dir)
    with pytest.raises(UserError) as info:
        train(cfg)
    assert info.value.code == 1
    message = info.value.message
    assert "\n" not in message and "Traceback" not in message
    return message


# ------------------------------------------------------------------- skip: training goes on


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """One run on data holding every skippable bad input; returns (run dir, data root, report)."""
    tmp = tmp_path_factory.mktemp("messy")
    data = paired_tree(tmp / "data")
    (data / "left/good/good_00.png").write_bytes(b"")  # zero-byte
    _truncate(data / "right/stain/stain_02.png")  # truncated PNG
    jpeg = data / "left/scratch/scratch_04.jpg"
    Image.open(data / "left/scratch/scratch_04.png").save(jpeg, quality=95)
    (data / "left/scratch/scratch_04.png").unlink()
    _truncate(jpeg)  # truncated JPEG
    (data / "left/scratch/scratch_01.png").write_text("defect list, not an image\n")  # text
    (data / "left/good/good_99.png").mkdir()  # a folder named like an image
    Image.new("RGB", (64, 64)).save(data / "right/good/good_05.png")  # over the bomb limit below
    # converted, not errors: RGBA, palette, CMYK, 16-bit gray
    Image.open(data / "left/scratch/scratch_03.png").convert("RGBA").save(
        data / "left/scratch/scratch_03.png"
    )
    Image.open(data / "right/scratch/scratch_03.png").convert("P").save(
        data / "right/scratch/scratch_03.png"
    )
    Image.open(data / "left/good/good_04.png").convert("CMYK").save(data / "left/good/good_04.jpg")
    (data / "left/good/good_04.png").unlink()
    gray16 = (
        np.asarray(Image.open(data / "right/good/good_04.png").convert("L")).astype(np.uint16) * 257
    )
    Image.fromarray(gray16).save(data / "right/good/good_04.png")
    (data / "left/dent").mkdir()  # a class present in left but not right (blank images)
    Image.new("RGB", (SIZE_PX, SIZE_PX), (9, 9, 9)).save(data / "left/dent/dent_00.png")
    Image.new("RGB", (SIZE_PX, SIZE_PX), (200, 9, 9)).save(data / "left/dent/dent_01.png")
    (data / "right/stain/stain_05.png").rename(data / "right/stain/stain_5.png")  # mismatched names
    # the same bytes as another item's file
    shutil.copy(data / "left/stain/stain_03.png", data / "left/stain/stain_04.png")
    run_dir = tmp / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 32x32 passes, 64x64 > 2 x limit: refused
        cfg = compose_config("train", tiny(tmp, data), run_dir)
        results = train(cfg)
    assert "fit" in results
    return run_dir, data, json.loads((run_dir / "data_report.json").read_text())


BAD_FILES = {  # file -> what its reason must say
    "left/good/good_00.png": "empty (0 bytes)",
    "right/stain/stain_02.png": "truncated or corrupt",
    "left/scratch/scratch_04.jpg": "truncated or corrupt",
    "left/scratch/scratch_01.png": "not a recognised image",
    "left/good/good_99.png": "is a directory",
    "right/good/good_05.png": "MAX_IMAGE_PIXELS",
}


def test_bad_files_are_skipped_listed_and_training_goes_on(messy_run) -> None:
    run_dir, data, report = messy_run
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,")  # one epoch trained on the rest
    listed = {row["path"]: row for row in report["bad_files"]}
    assert sorted(listed) == sorted(str(data / f) for f in BAD_FILES)
    for file, reason in BAD_FILES.items():
        row = listed[str(data / file)]
        assert reason in row["reason"], (file, row["reason"])
        assert (
            "delete" in row["reason"] or "rename" in row["reason"] or "MAX_IMAGE" in row["reason"]
        )
    # a bad view is left out, and in the train split so are its item's 3 composites (and its
    # painted variants for a good item); a folder is no image, nothing is left out for it
    with (run_dir / "split.csv").open() as handle:
        split_of = {row["item_id"]: row["split"] for row in csv.DictReader(handle)}
    for file in BAD_FILES:
        skipped = listed[str(data / file)]["images_skipped"]
        if file.endswith("good_99.png"):
            assert skipped == 0
        elif split_of[Path(file).stem] == "train":
            assert skipped == 1 + 3 + (2 if "/good/" in file else 0), file
        else:
            assert skipped == 1, file
    assert report["problems"]["bad_files"] == len(BAD_FILES)
    assert report["on_bad_image"] == "skip"


def test_odd_modes_are_converted_not_errors(messy_run) -> None:
    _, data, report = messy_run
    modes = {row["path"]: row["mode"] for row in report["odd_modes"]}
    assert modes == {
        str(data / "left/scratch/scratch_03.png"): "RGBA",
        str(data / "right/scratch/scratch_03.png"): "P",
        str(data / "left/good/good_04.jpg"): "CMYK",
        str(data / "right/good/good_04.png"): "I;16",
    }
    assert report["modes"]["real"]["RGB"] == sum(report["modes"]["real"].values()) - 4


def test_unpaired_views_are_single_views_and_left_out_of_composites(messy_run) -> None:
    _, data, report = messy_run
    unpaired = set(report["unpaired"]["real"])
    assert unpaired == {
        str(data / "left/dent/dent_00.png"), str(data / "left/dent/dent_01.png"),
        str(data / "left/stain/stain_05.png"), str(data / "right/stain/stain_5.png"),
    }  # fmt: skip
    assert set(report["composites_skipped"]["composite"]) == {
        "dent_00",
        "dent_01",
        "stain_05",
        "stain_5",
    }
    # the left-only class still trains as single views
    counts = {
        (r["split"], r["source"], r["view"], r["label"]): r["images"] for r in report["counts"]
    }
    assert counts[("train", "real", "left", "dent")] == 2
    assert not any(k[1] == "composite" and k[3] == "dent" for k in counts)


def test_duplicates_and_blank_images_are_reported(messy_run) -> None:
    _, data, report = messy_run
    (dup,) = report["duplicates"]
    assert dup["paths"] == [
        str(data / "left/stain/stain_03.png"),
        str(data / "left/stain/stain_04.png"),
    ]
    assert dup["item_ids"] == ["stain_03", "stain_04"]
    assert set(report["constant_images"]) == {
        str(data / "left/dent/dent_00.png"),
        str(data / "left/dent/dent_01.png"),
    }


def test_mismatched_names_are_shown_as_likely_pairs(tmp_path, caplog) -> None:
    from anomaly_vit.data.sources import PairedFolderSource

    data = paired_tree(tmp_path / "data", n_items=2)
    (data / "right/good/good_01.png").rename(data / "right/good/good-1.png")
    shutil.rmtree(data / "right/scratch")
    with caplog.at_level("WARNING"):
        PairedFolderSource(root=str(data), name="real").scan()
    assert "left 'good_01.png' ~ right 'good-1.png'" in caplog.text
    assert "class folder(s) missing: right/scratch)" in caplog.text
    assert "kept as single views" in caplog.text


def test_report_is_logged_to_tensorboard(messy_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, _ = messy_run
    texts = []
    for events in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            if tag.startswith("data/report"):
                texts += [e.tensor_proto.string_val[0].decode() for e in accumulator.Tensors(tag)]
    assert len(texts) == 1
    assert "bad_files 6" in texts[0] and "good_00.png" in texts[0]


# ------------------------------------------------------------ error: one line, file and fix


def _bad_file(kind: str, data: Path) -> Path:
    if kind == "zero-byte":
        path = data / "left/good/good_00.png"
        path.write_bytes(b"")
    elif kind == "truncated png":
        path = data / "left/good/good_00.png"
        _truncate(path)
    elif kind == "truncated jpeg":
        path = data / "left/good/good_00.jpg"
        Image.open(data / "left/good/good_00.png").save(path, quality=95)
        (data / "left/good/good_00.png").unlink()
        _truncate(path)
    elif kind == "text file":
        path = data / "left/good/good_00.png"
        path.write_text("not an image")
    elif kind == "directory":
        path = data / "left/good/good_77.png"
        path.mkdir()
    else:  # "bomb"
        path = data / "left/good/good_00.png"
        Image.new("RGB", (64, 64)).save(path)
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("zero-byte", "file is empty (0 bytes)"),
        ("truncated png", "truncated or corrupt"),
        ("truncated jpeg", "truncated or corrupt"),
        ("text file", "not a recognised image"),
        ("directory", "is a directory"),
        ("bomb", "MAX_IMAGE_PIXELS"),
    ],
)
def test_bad_file_with_on_bad_image_error_names_file_and_fix(
    tmp_path, monkeypatch, kind, reason
) -> None:
    data = paired_tree(tmp_path / "data", n_items=3)
    path = _bad_file(kind, data)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)
    cfg = compose_config("train", tiny(tmp_path, data, "data.on_bad_image=error"), tmp_path / "run")
    with pytest.raises(BadImageError) as info:
        datamodule = build_datamodule(cfg.data, tmp_path / "run")
        datamodule.setup()
    message = str(info.value)
    assert f"'{path}'" in message and reason in message
    assert "data.on_bad_image=skip" in message


def test_on_bad_image_error_stops_training_with_one_line(tmp_path, monkeypatch) -> None:
    data = paired_tree(tmp_path / "data", n_items=3)
    (data / "right/scratch/scratch_01.png").write_bytes(b"")
    message = user_error(
        monkeypatch, tiny(tmp_path, data, "data.on_bad_image=error"), tmp_path / "run"
    )
    assert message.startswith(
        f"bad image file '{data / 'right/scratch/scratch_01.png'}': file is empty"
    )
    assert "data.on_bad_image=skip" in message
    assert not (tmp_path / "run" / "metrics.csv").exists()


# ------------------------------------------------------------------ configs and layouts


def _manifest(tmp_path: Path, data: Path, text: str) -> list[str]:
    csv_path = tmp_path / "manifest.csv"
    csv_path.write_text(text.format(data=data))
    source = (
        "{m:{_target_:anomaly_vit.data.sources.ManifestSource,"
        f"csv_path:'{csv_path}',classes:[good,scratch,stain]}}}}"
    )
    # the only source is real: no synthetic share (else that error comes before the manifest's)
    return ["~data.sources", f"+data.sources={source}", "data.synthetic_fraction=null"]


MANIFEST_HEADER = "path,label,item_id\n"
MANIFEST_ROWS = "".join(
    f"{{data}}/left/{label}/{label}_{i:02d}.png,{label},{label}_{i:02d}\n"
    for label in CLASSES
    for i in range(3)
)

CONFIG_CASES = {
    # id: (overrides, substrings of the message)
    "missing data root": (
        ["data.sources.real.root={tmp}/nowhere"],
        [
            "data folder '{tmp}/nowhere' (data.sources.real.root) does not exist",
            "fix data.sources.real.root",
        ],
    ),
    "empty class folder": (
        ["+setup=empty_class"],
        ["class folder '{data}/left/dent' has no images", "add images or remove the folder"],
    ),
    "manifest missing columns": (
        ["+setup=manifest:path,class\n{data}/left/good/good_00.png,good\n"],
        ["manifest.csv' lacks column(s) ['label', 'item_id']", "the header must contain"],
    ),
    "manifest unknown label": (
        [
            "+setup=manifest:"
            + MANIFEST_HEADER
            + MANIFEST_ROWS
            + "{data}/left/good/good_05.png,dent,x\n"
        ],
        ["line 11: label 'dent' is not in data.sources.m.classes", "fix these rows"],
    ),
    "manifest missing path": (
        ["+setup=manifest:" + MANIFEST_HEADER + MANIFEST_ROWS + "nope/gone.png,good,gone\n"],
        ["line 11: image 'nope/gone.png' not found", "fix these rows"],
    ),
    "manifest duplicate row": (
        [
            "+setup=manifest:"
            + MANIFEST_HEADER
            + MANIFEST_ROWS
            + "{data}/left/good/good_00.png,good,good_00\n"
        ],
        ["line 11: '{data}/left/good/good_00.png' is listed twice (also line 2)"],
    ),
    "negative weight": (
        ["data.sources.composite.weight=-1"],
        ["data.sources.composite.weight = -1: a mix weight must be >= 0"],
    ),
    "all weights zero": (
        [
            "data.sources.real.weight=0",
            "data.sources.composite.weight=0",
            "data.sources.painted.weight=0",
        ],
        [
            "every mix weight is 0 (data.sources.real.weight,",
            "give at least one source a weight > 0",
        ],
    ),
    "derived base names no source": (
        ["data.sources.painted.base=reel"],
        [
            "data.sources.painted.base='reel' names no source; known sources: ['composite', 'painted', 'real']"
        ],
    ),
    "weight for an unknown source": (
        ["+data.sources.rendrs.weight=2"],
        [
            "data.sources.rendrs is not an image source",
            "one of the configured sources ['composite', 'painted', 'real']",
        ],
    ),
    "eval source unknown": (
        ["data.eval_sources=[reel]"],
        ["data.eval_sources names unknown source(s) ['reel']"],
    ),
    "synthetic_fraction above 1": (
        ["data.synthetic_fraction=1.5"],
        ["data.synthetic_fraction must be in [0, 1]", "got 1.5"],
    ),
    "synthetic_fraction below 0": (
        ["data.synthetic_fraction=-0.1"],
        ["data.synthetic_fraction must be in [0, 1]", "got -0.1"],
    ),
    "img_size not divisible": (
        ["model.net.img_size=30"],
        ["model.net.img_size=30 is not divisible by model.net.patch_size=8"],
    ),
    "unknown stem": (
        ["model.net.stem=vit"],
        ["model.net.stem='vit': use one of ['patch', 'conv', 'resnet']"],
    ),
    "unknown head fusion (maps)": (
        ["+setup=maps", "callbacks.maps.head_fusion=median"],
        ["callbacks.maps.head_fusion='median': use one of ['mean', 'max', 'min']"],
    ),
    "unknown timm model": (
        ["model.net.model_name=vit_tiny_patch16_22"],
        [
            "model.net.model_name='vit_tiny_patch16_22' is not a timm model. Did you mean",
            "'vit_tiny_patch16_224'",
        ],
    ),
    "ckpt_path missing": (
        ["ckpt_path={tmp}/gone/last.ckpt"],
        ["ckpt_path={tmp}/gone/last.ckpt does not exist"],
    ),
    "ckpt_path not a checkpoint": (
        ["ckpt_path={tmp}/notes.ckpt"],
        ["ckpt_path={tmp}/notes.ckpt is not a checkpoint", "not written by torch.save"],
    ),
    "ckpt_path a folder": (
        ["ckpt_path={tmp}"],
        ["ckpt_path={tmp} is a folder, not a checkpoint file"],
    ),
    "finetune_from missing": (
        ["finetune_from={tmp}/gone/last.ckpt"],
        ["finetune_from={tmp}/gone/last.ckpt does not exist"],
    ),
    "finetune_from not a checkpoint": (
        ["finetune_from={tmp}/notes.ckpt"],
        ["finetune_from={tmp}/notes.ckpt is not a checkpoint"],
    ),
    "every_n_epochs 0 (checkpoints)": (
        ["callbacks.checkpoint_periodic.every_n_epochs=0"],
        ["callbacks.checkpoint_periodic.every_n_epochs=0: must be an integer >= 1"],
    ),
    "every_n_epochs 0 (curves)": (
        ["callbacks.curves.every_n_epochs=0"],
        ["callbacks.curves.every_n_epochs=0: must be an integer >= 1"],
    ),
    "every_n_epochs negative (maps)": (
        ["+setup=maps", "callbacks.maps.every_n_epochs=-2"],
        [
            "callbacks.maps.every_n_epochs=-2: must be an integer >= 1",
            "set callbacks.maps=null",
        ],
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_and_layout_errors_are_one_clear_line(tmp_path, monkeypatch, case) -> None:
    overrides, expected = CONFIG_CASES[case]
    data = paired_tree(tmp_path / "data", n_items=3)
    (tmp_path / "notes.ckpt").write_text("epoch 200 was the best\n")
    names = {"tmp": tmp_path, "data": data}
    base = tiny(tmp_path, data)
    extra = []
    for override in overrides:
        if override == "+setup=empty_class":
            for view in ("left", "right"):
                (data / view / "dent").mkdir()
        elif override.startswith("+setup=manifest:"):
            extra += _manifest(tmp_path, data, override.removeprefix("+setup=manifest:"))
        elif override == "+setup=maps":
            base.remove("callbacks.maps=null")
        else:
            extra.append(override.format(**names))
    message = user_error(monkeypatch, base + extra, tmp_path / "run")
    for part in expected:
        assert part.format(**names) in message, message


def test_checkpoint_of_another_architecture(smoke_run, tmp_path, monkeypatch) -> None:
    """Resuming or fine-tuning from a checkpoint of another ViT shape: one line, not torch's dump."""
    other = tmp_path / "other" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    shutil.copy(smoke_run / "checkpoints" / "last.ckpt", other)
    data = paired_tree(tmp_path / "data", n_items=3)
    wider = [*tiny(tmp_path, data), "model.net.embed_dim=48"]
    message = user_error(monkeypatch, [*wider, f"ckpt_path={other}"], tmp_path / "resume")
    assert message.startswith(f"the weights in ckpt_path={other} do not fit this model")
    assert "net.cls_token" in message and "model config it was trained with" in message
    message = user_error(monkeypatch, [*wider, f"finetune_from={other}"], tmp_path / "finetune")
    assert f"finetune_from={other} was trained with a different architecture" in message

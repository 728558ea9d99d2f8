"""The data check: counts per split/source/view/class, odd files, duplicates across splits,
classes missing from a split; the `check_data` entry point reads every file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from anomaly_vit.build import build_datamodule
from anomaly_vit.check_data import check_data
from anomaly_vit.errors import UserError
from tests.helpers import compose_config, paired_tree, run_cli, tiny


def _datamodule(tmp_path: Path, data: Path, *extra: str):
    cfg = compose_config("train", tiny(tmp_path, data, *extra), tmp_path / "run")
    datamodule = build_datamodule(cfg.data, tmp_path / "run")
    datamodule.setup()
    return datamodule


def _counts(report: dict) -> dict[tuple[str, str, str], int]:
    totals: dict[tuple[str, str, str], int] = {}
    for row in report["counts"]:
        key = (row["split"], row["source"], row["view"])
        totals[key] = totals.get(key, 0) + row["images"]
    return totals


def test_clean_data_counts_and_no_problems(tmp_path) -> None:
    data = paired_tree(tmp_path / "data", n_items=6)  # per class: 4 train, 1 val, 1 test items
    report = _datamodule(tmp_path, data).report
    counts = _counts(report)
    assert counts[("train", "real", "left")] == counts[("train", "real", "right")] == 12
    assert {counts[("train", "composite", m)] for m in ("mean", "absdiff", "stack")} == {12}
    assert counts[("train", "painted", "painted")] == 4 * 2 * 2  # good items x views x kinds
    assert counts[("val", "real", "left")] == counts[("test", "real", "right")] == 3
    assert not any(k[0] != "train" and k[1] != "real" for k in counts)  # eval on real only
    per_class = {r["label"] for r in report["counts"] if r["split"] == "val"}
    assert per_class == {"good", "scratch", "stain"}
    assert set(report["problems"].values()) == {0}
    assert report["sources"]["real"]["scanned"] == 36 and report["sources"]["real"]["used"] == 36
    assert sum(s["mix_share"] for s in report["sources"].values()) == pytest.approx(1.0)
    assert report["modes"] == {"real": {"RGB": 36}} and report["sizes"] == {"real": {"32x32": 36}}
    written = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert written["counts"] == report["counts"]


def test_duplicates_across_splits_odd_sizes_and_missing_classes(tmp_path) -> None:
    data = paired_tree(tmp_path / "data", n_items=6)
    for view in ("left", "right"):  # two items of a class: too few for val and test
        (data / view / "dent").mkdir()
        for i in range(2):
            shutil.copy(
                data / view / "good" / f"good_0{i}.png", data / view / "dent" / f"dent_{i}.png"
            )
    Image.new("RGB", (48, 40), (1, 2, 3)).save(data / "right/stain/stain_00.png")
    # a crop a pixel narrower (as real photos cropped to the part vary) is not an odd size
    Image.open(data / "left/good/good_02.png").crop((0, 0, 31, 32)).save(
        data / "left/good/good_02.png"
    )
    datamodule = _datamodule(tmp_path, data)
    report = datamodule.report
    assert report["missing_classes"] == {"val": ["dent"], "test": ["dent"]}
    (odd,) = report["odd_sizes"]
    assert odd == {
        "path": str(data / "right/stain/stain_00.png"),
        "size": "48x40",
        "usual": "32x32",
    }
    assert report["constant_images"] == [str(data / "right/stain/stain_00.png")]
    duplicates = {tuple(d["item_ids"]): d for d in report["duplicates"]}
    assert set(duplicates) == {("dent_0", "good_00"), ("dent_1", "good_01")}
    for (dent, good), dup in duplicates.items():
        splits = {datamodule.split_of_item[dent], datamodule.split_of_item[good]}
        assert dup["across_splits"] == (len(splits) > 1)
        assert dup["splits"] == sorted(splits)
    assert report["problems"]["duplicates"] == 4  # the left and the right view of 2 items
    assert report["problems"]["missing_classes"] == 2


def test_report_is_written_by_rank_zero_only(tmp_path, monkeypatch) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    datamodule = _datamodule(tmp_path, paired_tree(tmp_path / "data", n_items=3))
    assert datamodule.report["problems"]["bad_files"] == 0
    assert not (tmp_path / "run" / "data_report.json").exists()
    assert not (tmp_path / "run" / "split.csv").exists()


def _renders(tmp_path: Path) -> tuple[Path, str]:
    """A synthetic folder source with weight 0 (training never reads it) and one bad file."""
    renders = tmp_path / "renders"
    paired_tree(tmp_path / "tmp_renders", n_items=2, seed=1)
    shutil.copytree(tmp_path / "tmp_renders" / "left", renders)
    (renders / "good" / "good_01.png").write_text("render failed")
    source = ("{_target_:anomaly_vit.data.sources.SingleFolderSource,"
              f"root:'{renders}',synthetic:true,weight:0}}")  # fmt: skip
    return renders / "good" / "good_01.png", f"+data.sources.renders={source}"


def test_check_data_decodes_every_file_and_prints_tables(tmp_path, capsys) -> None:
    bad, renders = _renders(tmp_path)
    data = paired_tree(tmp_path / "data", n_items=3)
    overrides = [
        o for o in tiny(tmp_path, data) if not o.startswith(("trainer.", "callbacks.", "test="))
    ]
    cfg = compose_config("check_data", [*overrides, renders], tmp_path / "check")
    report = check_data(cfg)
    assert [row["path"] for row in report["bad_files"]] == [str(bad)]
    assert "not a recognised image" in report["bad_files"][0]["reason"]
    assert (
        report["sources"]["renders"]["scanned"] == 6 and report["sources"]["renders"]["used"] == 0
    )
    assert report["modes"]["renders"] == {"RGB": 5}
    out = capsys.readouterr().out
    assert "images used per split" in out and "bad image files: 1" in out and "good_01.png" in out
    assert json.loads((tmp_path / "check" / "data_report.json").read_text())["bad_files"][0][
        "path"
    ] == str(bad)


def test_check_data_with_on_bad_image_error_lists_all_and_fails(tmp_path, monkeypatch) -> None:
    data = paired_tree(tmp_path / "data", n_items=3)
    for name in ("left/good/good_00.png", "right/stain/stain_01.png"):
        (data / name).write_bytes(b"")
    overrides = [
        o for o in tiny(tmp_path, data) if not o.startswith(("trainer.", "callbacks.", "test="))
    ]
    cfg = compose_config("check_data", [*overrides, "data.on_bad_image=error"], tmp_path / "check")
    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    with pytest.raises(UserError) as info:
        check_data(cfg)
    assert info.value.message.startswith("2 bad image file(s), e.g. ")
    assert "data.on_bad_image=skip" in info.value.message
    report = json.loads((tmp_path / "check" / "data_report.json").read_text())
    assert len(report["bad_files"]) == 2


@pytest.mark.slow
def test_check_data_cli(tmp_path) -> None:
    data = paired_tree(tmp_path / "data", n_items=3)
    common = ["data.demo=null", f"data.sources.real.root={data}", f"paths.root_dir={tmp_path}",
              "model.net.img_size=32", "data.sources.painted.kinds=[scratch,stain]"]  # fmt: skip
    result = run_cli("anomaly_vit.check_data", *common, f"hydra.run.dir={tmp_path}/ok")
    assert "images used per split" in result.stdout and "data check: 0 problem(s)" in result.stdout
    assert (tmp_path / "ok" / "data_report.json").is_file()
    (data / "left/good/good_00.png").write_text("oops")
    failed = run_cli("anomaly_vit.check_data", *common, f"hydra.run.dir={tmp_path}/bad",
                     "data.on_bad_image=error", check=False)  # fmt: skip
    assert failed.returncode == 1
    assert "error: 1 bad image file(s), e.g. " in failed.stderr and "Traceback" not in failed.stderr

"""Trust (issue 12): a checkpoint is data, resume loses nothing, eval does not leak, runs do not
collide, and the bad inputs a hostile-but-realistic user tries get one clear line.

Crafted checkpoints are made here from a real one and from harmless callables that write a
marker file under `tmp_path` (`pathlib.Path.write_text`): a marker that exists means code from
the checkpoint ran.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from anomaly_vit.build import build_datamodule
from anomaly_vit.cli.check_data import check_data
from anomaly_vit.cli.train import train
from anomaly_vit.errors import UserError
from tests.helpers import compose_config, paired_tree, run_cli, tiny
from tests.helpers.overrides import SMOKE


class Trap:
    """Unpickling this writes `marker`: stands for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "code ran"))


def craft(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """Copy checkpoint `src` to `dst` with `edit` applied to its contents."""
    checkpoint = torch.load(src, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, dst)
    return dst


def write_text_target(marker: Path) -> dict:
    """A config node that, if instantiated, writes `marker`."""
    return {
        "_target_": "pathlib.Path.write_text",
        "_args_": [{"_target_": "pathlib.Path", "_args_": [str(marker)]}, "code ran"],
    }


def copy_run(run_dir: Path, dst: Path) -> Path:
    """Copy a run folder; its checkpoints' callback states point at the copy, as if it ran there."""
    shutil.copytree(run_dir, dst)
    old, new = str(run_dir), str(dst)

    def retarget(value):
        if isinstance(value, str):
            return value.replace(old, new)
        if isinstance(value, dict):
            return {retarget(k): retarget(v) for k, v in value.items()}
        return value

    for path in (dst / "checkpoints").glob("*.ckpt"):
        craft(path, path, lambda c: c.update(callbacks=retarget(c["callbacks"])))
    return dst


def best_state(checkpoint: dict) -> dict:
    """The state of the best-model tracker (callbacks.checkpoint_best) in a checkpoint."""
    (state,) = [
        s
        for k, s in checkpoint["callbacks"].items()
        if k.startswith("ModelCheckpoint") and s["monitor"]
    ]
    return state


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    return lines[0]


# ----------------------------------------------------- 1. nothing stored may choose what is built


def test_eval_builds_no_target_stored_in_a_checkpoint(smoke_run, tmp_path) -> None:
    marker = tmp_path / "marker.txt"
    crafted = craft(
        smoke_run / "checkpoints" / "best.ckpt",
        tmp_path / "crafted.ckpt",
        lambda c: c["anomaly_vit"]["config"]["data"]["sources"].update(
            real=write_text_target(marker)
        ),
    )
    assert torch.load(crafted, weights_only=True)  # it passes weights_only: a data-only file
    result = run_cli(
        "anomaly_vit.eval",
        f"ckpt_path={crafted}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        check=False,
    )
    assert not marker.exists()
    line = error_line(result)
    assert "data.sources.real._target_='pathlib.Path.write_text'" in line
    assert "trusted_targets" in line


@pytest.mark.parametrize(
    ("option", "required"),
    [
        ("demo", []),
        ("manifest", ["data.manifest=/data/manifest.csv"]),
        ("folder", ["data.root=/data/images"]),
        ("paired", ["data.root=/data/rig"]),
    ],
)
def test_every_data_config_a_run_stores_may_be_built_by_eval(option, required, tmp_path) -> None:
    """The data config a training run stores (resolved, as in its checkpoints) passes the check
    eval applies: each _target_ is allowed, and the real-data keys are kept."""
    from omegaconf import OmegaConf

    from anomaly_vit.stored_config import DATA_TARGETS, checked_data_config

    cfg = compose_config("train", [f"data={option}", *required], tmp_path / "run")
    stored = OmegaConf.to_container(cfg.data, resolve=True)
    data = checked_data_config(stored, "ckpt_path=x.ckpt")
    targets = {data["_target_"]} | {s["_target_"] for s in data["sources"].values()}
    assert targets <= set(DATA_TARGETS) and len(targets) >= 2
    assert "batch_augment" not in data and "demo" not in data
    kept = {"task", "balance", "resize", "train_masks", "manifest", "root", "masks_root"}
    assert {k for k in kept if k in stored} <= set(data)
    if option != "demo":
        assert {"task", "balance", "resize", "train_masks"} <= set(data)


def test_explain_builds_no_network_that_loads_a_file_named_in_a_checkpoint(
    smoke_run, smoke_data_root, tmp_path
) -> None:
    marker = tmp_path / "marker.txt"
    trap = tmp_path / "trap.pth"
    torch.save({"w": Trap(marker)}, trap)
    crafted = craft(
        smoke_run / "checkpoints" / "best.ckpt",
        tmp_path / "crafted.ckpt",
        lambda c: c["hyper_parameters"]["net"].update(checkpoint_path=str(trap)),
    )
    images = smoke_data_root / "data" / "demo_smoke" / "left"
    result = run_cli(
        "anomaly_vit.explain", f"ckpt_path={crafted}", f"input={images}",
        f"hydra.run.dir={tmp_path / 'explain'}", "trust_pickle=true", check=False,
    )  # fmt: skip
    assert not marker.exists()
    assert "hyper_parameters.net.checkpoint_path" in error_line(result)


# ------------------------------------------- 2. weights_only everywhere, no foreign best checkpoint


def test_resume_tests_no_pickled_best_checkpoint_without_trust_pickle(
    smoke_run, smoke_data_root, tmp_path
) -> None:
    run = copy_run(smoke_run, tmp_path / "run")
    marker = tmp_path / "marker.txt"
    best = run / "checkpoints" / "best.ckpt"
    craft(best, best, lambda c: c.update(trap=Trap(marker)))
    # last.ckpt is clean; the run is complete, so the resume goes straight to testing best.ckpt
    result = run_cli(
        "anomaly_vit.train", *SMOKE, f"paths.root_dir={smoke_data_root}",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", check=False,
    )  # fmt: skip
    assert not marker.exists()
    line = error_line(result)
    assert f"{best}" in line and "pathlib.PosixPath" in line and "trust_pickle=true" in line


def test_resume_follows_no_best_checkpoint_outside_its_run(
    smoke_run, smoke_data_root, tmp_path
) -> None:
    run = copy_run(smoke_run, tmp_path / "run")
    marker = tmp_path / "marker.txt"
    foreign = tmp_path / "elsewhere" / "best.ckpt"
    foreign.parent.mkdir()
    craft(run / "checkpoints" / "best.ckpt", foreign, lambda c: c.update(trap=Trap(marker)))
    last = run / "checkpoints" / "last.ckpt"
    craft(last, last, lambda c: best_state(c).update(best_model_path=str(foreign)))
    result = run_cli(
        "anomaly_vit.train", *SMOKE, f"paths.root_dir={smoke_data_root}", f"ckpt_path={last}",
        "trust_pickle=true", check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert not marker.exists()
    assert "not followed" in result.stdout + result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_checkpoint"] == str(run / "checkpoints" / "best.ckpt")


# ------------------------------------------------------- 3. a resume keeps the best checkpoint


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_every_checkpoint_knows_the_best_score_up_to_its_epoch(smoke_run) -> None:
    rows = _rows(smoke_run)
    for row in rows:
        epoch = int(row["epoch"])
        checkpoint = torch.load(
            smoke_run / "checkpoints" / f"epoch_{epoch:04d}.ckpt", weights_only=True
        )
        best_so_far = max(float(r["val/balanced_acc"]) for r in rows[:epoch])
        stored = best_state(checkpoint)["best_model_score"]
        assert stored is not None and float(stored) == pytest.approx(best_so_far), epoch


@pytest.mark.slow
def test_resumed_run_keeps_the_best_checkpoint_and_its_test_metrics(
    smoke_run, smoke_data_root, tmp_path
) -> None:
    """Validation at epoch 1 ties epoch 3 and beats epoch 2 (seed 42): the uninterrupted run
    keeps epoch 1 as best; a run killed after epoch 1 must keep it too."""
    common = [
        *SMOKE,
        "trainer.deterministic=true",
        "trainer.max_epochs=3",
        f"paths.root_dir={smoke_data_root}",
    ]
    full, part = tmp_path / "full", tmp_path / "part"
    run_cli("anomaly_vit.train", *common, f"hydra.run.dir={full}")
    killed = run_cli(
        "anomaly_vit.train", *common, f"hydra.run.dir={part}",
        "+callbacks.kill._target_=tests.helpers.callbacks.KillAfterEpoch", "+callbacks.kill.epoch=1", check=False,
    )  # fmt: skip
    assert killed.returncode == 17
    run_cli("anomaly_vit.train", *common, f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}")
    scores = [float(r["val/balanced_acc"]) for r in _rows(full)]
    assert scores[0] == max(scores) and scores[1] < scores[0]  # the case this test is about
    assert [r["val/balanced_acc"] for r in _rows(part)] == [
        r["val/balanced_acc"] for r in _rows(full)
    ]
    best_full = torch.load(full / "checkpoints" / "best.ckpt", weights_only=True)
    best_part = torch.load(part / "checkpoints" / "best.ckpt", weights_only=True)
    assert best_part["anomaly_vit"]["global_epoch"] == best_full["anomaly_vit"]["global_epoch"] == 1
    assert all(
        torch.equal(best_full["state_dict"][k], v) for k, v in best_part["state_dict"].items()
    )
    test_full = json.loads((full / "summary.json").read_text())["test"]
    test_part = json.loads((part / "summary.json").read_text())["test"]
    for key, value in test_full.items():
        if isinstance(value, float) and math.isfinite(value):
            assert test_part[key] == pytest.approx(value, abs=1e-6), key
    assert test_part["test/confusion"] == test_full["test/confusion"]


# ------------------------------------------------ 4. one folder per run, resume only when asked


def test_runs_started_in_the_same_second_get_their_own_folders(smoke_data_root, tmp_path) -> None:
    """Folders named like the runs' would-be folders for the next two minutes exist already
    (another run's, with its metrics.csv): two runs started together each get a new one."""
    import datetime
    import os
    import subprocess
    import sys

    runs = tmp_path / "outputs" / "runs"
    start = datetime.datetime.now()
    decoys = [
        runs / f"{(start + datetime.timedelta(seconds=s)):%Y-%m-%d_%H-%M-%S}_same"
        for s in range(-2, 120)
    ]
    for decoy in decoys:
        decoy.mkdir(parents=True)
        (decoy / "metrics.csv").write_text("epoch\n1\n")
    args = [
        sys.executable, "-m", "anomaly_vit.train", *SMOKE, "run_name=same", "trainer.max_epochs=1", "test=false",
        f"paths.root_dir={tmp_path}", f"data.demo.out_dir={smoke_data_root / 'data' / 'demo_smoke'}",
    ]  # fmt: skip
    jobs = [
        subprocess.Popen(
            args, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [job.communicate(timeout=600) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert all((decoy / "metrics.csv").read_text() == "epoch\n1\n" for decoy in decoys)
    assert sorted(p.name for d in decoys for p in d.iterdir()) == ["metrics.csv"] * len(decoys)
    written = [Path(out.split("Run written to ")[1].split()[0]) for out, _ in outputs]
    assert written[0] != written[1]
    for run in written:
        assert (
            run.name.rsplit("_", 1)[0] + "" in {d.name for d in decoys}
            and run.name.rsplit("_", 1)[1].isdigit()
        )
        assert [r["epoch"] for r in _rows(run)] == ["1"]
        assert not list((run / ".hydra").glob("resume_*"))  # a new run, not a resume


def test_a_new_run_refuses_another_runs_folder(smoke_run, smoke_data_root, tmp_path) -> None:
    run = shutil.copytree(smoke_run, tmp_path / "run")
    before = (run / "metrics.csv").read_text()
    result = run_cli(
        "anomaly_vit.train",
        *SMOKE,
        f"paths.root_dir={smoke_data_root}",
        f"hydra.run.dir={run}",
        check=False,
    )
    line = error_line(result)
    assert (
        "already holds a run" in line and f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}" in line
    )
    assert (run / "metrics.csv").read_text() == before


# ------------------------------------------------------------ 5. eval keeps the run's split


def _items(split_csv: Path, split: str) -> set[str]:
    with split_csv.open() as handle:
        return {
            r["item_id"]
            for r in csv.DictReader(handle)
            if r["split"] == split and r["source"] == "real"
        }


def test_eval_tests_the_runs_test_items_after_the_data_changed(
    smoke_run, smoke_data_root, tmp_path
) -> None:
    run = copy_run(smoke_run, tmp_path / "run")
    data = shutil.copytree(smoke_data_root / "data" / "demo_smoke", tmp_path / "data")
    test_items, train_items = (
        sorted(_items(run / "split.csv", "test")),
        sorted(_items(run / "split.csv", "train")),
    )
    removed = test_items[:2] + train_items[:4]
    for item in removed:
        for path in data.rglob(f"{item}.png"):
            path.unlink()
    result = run_cli(
        "anomaly_vit.eval", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
        f"+data.sources.real.root={data}", f"hydra.run.dir={tmp_path / 'eval'}", check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    tested = _items(tmp_path / "eval" / "split.csv", "test")
    assert tested == set(test_items) - set(removed)  # no training item joined the test split
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["data"]["split_changes"] == {"appeared": [], "disappeared": sorted(removed)}
    assert sum(map(sum, summary["test"]["test/confusion"])) == 2 * len(tested)  # two views each


# ------------------------------------------------------ 6. one label per item, case-clashing labels


def _manifest_config(tmp_path: Path, rows: list[tuple[str, str]]) -> list[str]:
    """A manifest of random 32 px images, one (label, item_id) per row; check_data overrides."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = ["path,label,item_id"]
    for index, (label, item_id) in enumerate(rows):
        name = f"img_{index:03d}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / name)
        lines.append(f"{name},{label},{item_id}")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    return [  # the source's root goes before data.demo (its interpolation reads data.demo)
        "~data.sources.real.root", f"paths.root_dir={tmp_path}", "data.demo=null",
        "~data.sources.composite", "~data.sources.painted", "data.synthetic_fraction=null",
        "data.sources.real._target_=anomaly_vit.data.sources.ManifestSource",
        f"+data.sources.real.csv_path={tmp_path / 'manifest.csv'}", "model.net.img_size=32",
    ]  # fmt: skip


def test_check_data_lists_a_manifest_item_with_several_labels(tmp_path) -> None:
    """An item_id may group good and defect images (a capture session, real-data manifests),
    so it is not an error, but the data report lists it: a typo is not silent."""
    rows = [(label, f"{label}_{i}") for label in ("good", "scratch") for i in range(5)]
    rows.append(("scratch", "good_3"))  # line 12: the item good_3 again, with another label
    overrides = _manifest_config(tmp_path, rows)
    report = check_data(compose_config("check_data", overrides, tmp_path / "check"))
    assert report["items_with_several_labels"] == {"good_3": ["good", "scratch"]}
    saved = json.loads((tmp_path / "check" / "data_report.json").read_text())
    assert saved["items_with_several_labels"] == {"good_3": ["good", "scratch"]}


def test_labels_differing_only_by_case_are_reported(tmp_path, caplog) -> None:

    rows = [(label, f"{label}_{i}") for label in ("good", "Good", "scratch") for i in range(4)]
    report = check_data(
        compose_config("check_data", _manifest_config(tmp_path, rows), tmp_path / "check")
    )
    assert report["classes"] == ["good", "Good", "scratch"]
    assert report["labels_differing_by_case"] == [["Good", "good"]]
    assert report["problems"]["labels_differing_by_case"] == 1
    assert "labels ['Good', 'good'] differ only by case" in caplog.text


# --------------------------------------------------- 7. resuming an earlier checkpoint keeps history


def test_resuming_an_earlier_checkpoint_refuses_to_drop_later_epochs(
    smoke_run, smoke_data_root, tmp_path
) -> None:
    run = copy_run(smoke_run, tmp_path / "run")
    before = (run / "metrics.csv").read_text()
    last = (run / "checkpoints" / "last.ckpt").read_bytes()
    earlier = run / "checkpoints" / "epoch_0001.ckpt"
    common = [*SMOKE, f"paths.root_dir={smoke_data_root}", f"ckpt_path={earlier}"]
    result = run_cli("anomaly_vit.train", *common, "trainer.max_epochs=3", check=False)
    line = error_line(result)
    assert "global epoch 1" in line and "drop epochs 2-2" in line and "rewind=true" in line
    assert (run / "metrics.csv").read_text() == before
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == last
    # said so: epoch 2 is trained again
    run_cli("anomaly_vit.train", *common, "trainer.max_epochs=2", "rewind=true")
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]
    assert (
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["anomaly_vit"][
            "global_epoch"
        ]
        == 2
    )


# ------------------------------------------------------------- 8. one clear line, not a traceback


def _train_message(monkeypatch, overrides: list[str], run_dir: Path) -> str:

    monkeypatch.setenv("AVIT_TRACEBACK", "0")
    with pytest.raises(UserError) as info:
        train(compose_config("train", overrides, run_dir))
    assert "\n" not in info.value.message
    return info.value.message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1: set a whole number of epochs >= 1"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0: set a whole number of epochs >= 1"),
        ("model.net.patch_size=0", "model.net.patch_size=0: must be a whole number of pixels >= 1"),
        (
            "model.optimizer.lr=-0.001",
            "model.optimizer.lr=-0.001: the learning rate must be a number > 0",
        ),
        ("data.batch_size=0", "data.batch_size=0: a batch size must be a whole number >= 1"),
    ],
)
def test_bad_training_values_name_their_key(
    smoke_data_root, tmp_path, monkeypatch, override, expected
) -> None:
    overrides = [*SMOKE, f"paths.root_dir={smoke_data_root}", override]
    assert expected in _train_message(monkeypatch, overrides, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.csv").exists()  # stopped before training


def test_one_class_data_says_a_defect_class_is_needed(tmp_path, monkeypatch) -> None:

    data = paired_tree(tmp_path / "data", classes=("good",))
    overrides = [
        *tiny(tmp_path, data),
        "~data.sources.painted",
        "~data.sources.composite",
        "data.synthetic_fraction=null",
    ]
    message = _train_message(monkeypatch, overrides, tmp_path / "run")
    assert "1 class(es) ['good']" in message and "at least one defect class" in message


def test_ckpt_path_of_a_checkpoints_folder_suggests_its_last_checkpoint(
    smoke_run, smoke_data_root, tmp_path, monkeypatch
) -> None:
    folder = smoke_run / "checkpoints"
    overrides = [*SMOKE, f"paths.root_dir={smoke_data_root}", f"ckpt_path={folder}"]
    message = _train_message(monkeypatch, overrides, tmp_path / "run")
    assert f"e.g. {folder / 'last.ckpt'}." in message and "checkpoints/checkpoints" not in message


def test_divergence_in_the_last_steps_of_an_epoch_is_one_line(
    smoke_data_root, tmp_path, monkeypatch
) -> None:
    overrides = [
        *SMOKE,
        f"paths.root_dir={smoke_data_root}",
        "model.optimizer.lr=1e4",
        "trainer.max_epochs=1",
    ]
    message = _train_message(monkeypatch, overrides, tmp_path / "run")
    assert (
        "non-finite" in message
        and "global epoch 1" in message
        and "lower model.optimizer.lr" in message
    )


def test_progress_bar_callback_is_dropped_when_the_bar_is_off(smoke_data_root, tmp_path) -> None:
    overrides = [
        *SMOKE, f"paths.root_dir={smoke_data_root}", "trainer.max_epochs=1", "test=false",
        "+callbacks.progress._target_=anomaly_vit.callbacks.progress.GlobalEpochProgressBar",
        "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    train(compose_config("train", overrides, tmp_path / "run"))
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == ["1"]


def test_a_mask_of_another_aspect_ratio_is_warned(tmp_path, caplog) -> None:
    from PIL import Image

    data = paired_tree(tmp_path / "data")
    for view in ("left", "right"):
        mask = data / "masks" / view / "scratch" / "scratch_00.png"
        mask.parent.mkdir(parents=True)
        Image.new("L", (64, 16), 255).save(mask)  # 4:1, the image is 32x32
    cfg = compose_config("train", tiny(tmp_path, data), tmp_path / "run")
    build_datamodule(cfg.data, tmp_path / "run").setup()
    warned = [r.getMessage() for r in caplog.records if "another aspect ratio" in r.getMessage()]
    assert len(warned) >= 2 and "64x16 (w x h) but its image is 32x32" in warned[0]

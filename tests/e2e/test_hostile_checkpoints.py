"""Known-hostile checkpoints through every command that loads one: nothing stored in a
checkpoint may run code, build an object or make timm read a file. Each case plants a payload
that, if it ran, would create `marker`; each command must end (refused with one line, or done
without reading the payload) with `marker` never created.

A table, so a new command that loads checkpoints is one line in COMMANDS, and a new kind of
payload one line in CASES. `predict` and the app read an exported bundle, never a checkpoint:
`export` is their checkpoint door.
"""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_vit.cli.eval import evaluate
from anomaly_vit.cli.export import export
from anomaly_vit.cli.pretrain import pretrain
from anomaly_vit.cli.train import train
from anomaly_vit.errors import UserError
from anomaly_vit.explain.command import explain
from tests.helpers import compose_config

PRETRAIN = ["debug=smoke", "callbacks.maps=null"]
SMOKE = [*PRETRAIN, "test=false", "explain_scores=null"]


class Trap:
    """Unpickling this creates `marker`: stands for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "code ran"))


def _target(marker: Path) -> dict:
    """A config node that, if instantiated, creates `marker`."""
    return {
        "_target_": "pathlib.Path.write_text",
        "_args_": [{"_target_": "pathlib.Path", "_args_": [str(marker)]}, "code ran"],
    }


def _interpolation(marker: Path) -> str:
    """An interpolation that, if resolved, creates the folder `marker` (a project resolver)."""
    return "${avit.run_dir_or_new:null," + str(marker) + "}"


def _trap_file(marker: Path) -> str:
    """A file that creates `marker` when loaded as a pickle (what timm would read)."""
    path = marker.parent / "weights.pth"
    torch.save({"state_dict": Trap(marker)}, path)
    return str(path)


def _best_tracker(checkpoint: dict) -> dict:
    return next(s for k, s in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint"))


# payload name -> how it is planted into a checkpoint (the dict torch.load gives) for `marker`
CASES: dict[str, Callable[[dict, Path], None]] = {
    "target_in_data_config": lambda c, m: c["anomaly_vit"]["config"]["data"]["sources"].update(
        real=_target(m)
    ),
    "target_in_hparams": lambda c, m: c["hyper_parameters"]["net"].update(act_layer=_target(m)),
    "interpolation_in_data_config": lambda c, m: c["anomaly_vit"]["config"]["data"].update(
        name=_interpolation(m)
    ),
    "interpolation_in_hparams": lambda c, m: c["hyper_parameters"].update(
        good_class=_interpolation(m)
    ),
    "pickle_in_best_path": lambda c, m: _best_tracker(c).update(best_model_path=Trap(m)),
    "pickle_in_lineage": lambda c, m: c["anomaly_vit"].update(lineage=[{"run_dir": Trap(m)}]),
    "pickle_in_callbacks_state": lambda c, m: c["callbacks"]["RNGStateCheckpoint"].update(
        extra=Trap(m)
    ),
    "timm_checkpoint_path": lambda c, m: c["hyper_parameters"]["net"].update(
        checkpoint_path=_trap_file(m)
    ),
    "timm_pretrained": lambda c, m: c["hyper_parameters"]["net"].update(
        pretrained=True, pretrained_cfg_overlay={"file": _trap_file(m)}
    ),
}
PICKLED = {name for name in CASES if name.startswith("pickle_")}


def _input_folder(work: Path) -> Path:
    folder = work / "input"
    folder.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "x.png")
    return folder


# command -> how it runs in process on checkpoint `ckpt` of the run copy `run` (data: `root`)
COMMANDS: dict[str, Callable[[Path, Path, Path], object]] = {
    "train_resume": lambda ckpt, run, root: train(
        compose_config("train", [*SMOKE, f"paths.root_dir={root}", f"ckpt_path={ckpt}"], run)
    ),
    "finetune_from": lambda ckpt, run, root: train(
        compose_config(
            "train",
            [*SMOKE, f"paths.root_dir={root}", f"finetune_from={ckpt}", "trainer.max_epochs=1"],
            run.parent / "finetune",
        )  # fmt: skip
    ),
    "eval": lambda ckpt, run, root: evaluate(
        compose_config("eval", [f"ckpt_path={ckpt}"], run.parent / "eval")
    ),
    "explain": lambda ckpt, run, root: explain(
        compose_config(
            "explain",
            [
                f"ckpt_path={ckpt}",
                f"input={_input_folder(run.parent)}",
                "overlays=false",
                "kinds=[evidence]",
            ],
            run.parent / "explain",
        )  # fmt: skip
    ),
    "export": lambda ckpt, run, root: export(
        compose_config("export", [f"ckpt_path={ckpt}"], run.parent / "export")
    ),
    "pretrain_resume": lambda ckpt, run, root: pretrain(
        compose_config("pretrain", [*PRETRAIN, f"paths.root_dir={root}", f"ckpt_path={ckpt}"], run)
    ),
}
# commands that read every part of the checkpoint quickly; the others train (slow)
FAST_COMMANDS = {"eval", "explain", "export"}


def _params():
    for command in COMMANDS:
        for case in CASES:
            slow = command not in FAST_COMMANDS and case not in PICKLED
            marks = [pytest.mark.slow] if slow else []
            yield pytest.param(command, case, marks=marks, id=f"{command}-{case}")


@pytest.mark.parametrize(("command", "case"), list(_params()))
def test_no_payload_in_a_checkpoint_runs(
    command, case, smoke_run, smoke_data_root, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("AVIT_TRACEBACK", "0")  # refusals end as the CLI ends them
    run = Path(shutil.copytree(smoke_run, tmp_path / "run"))
    ckpt = run / "checkpoints" / "last.ckpt"
    marker = tmp_path / "marker"
    checkpoint = torch.load(ckpt, weights_only=True)
    CASES[case](checkpoint, marker)
    torch.save(checkpoint, ckpt)
    try:
        COMMANDS[command](ckpt, run, smoke_data_root)
        refused = None
    except UserError as error:
        refused = error.message
    assert not marker.exists(), f"{command} ran the payload of {case}"
    if case in PICKLED:  # refused by weights_only, with the way to opt in
        assert refused and "trust_pickle=true" in refused, refused
    reads = {
        "eval": ("_config", "_hparams"),
        "explain": ("_hparams",),
        "export": ("_hparams",),
    }.get(command, ())
    if (
        case.startswith(("target", "interpolation"))
        and case.endswith(reads)
        or (command in FAST_COMMANDS and case.startswith("timm"))
    ):  # what eval (data config, network), explain and export (network) build from: by name
        assert refused and refused.startswith(f"ckpt_path={ckpt} stores"), refused

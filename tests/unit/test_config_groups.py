"""Every option of every config group composes, for every command, and names classes that exist.

The groups and their options are read from conf/ (and Hydra's plugins for `hydra/launcher` and
`hydra/sweeper`), never listed here: a new option is tested the day it is added. Each option is
composed with the `hydra` node (`return_hydra_config=True`), every interpolation is resolved,
and every `_target_` in the result (Hydra's launcher and sweeper included) is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import OmegaConf, open_dict, read_write

from anomaly_vit.compose import compose
from tests.helpers import CONF

COMMANDS = ["train", "pretrain", "eval", "explain", "check_data", "bench"]
# Hydra's own groups worth composing: where and how the jobs of a sweep run (every command
# shares conf/hydra/default.yaml; training is the one that sweeps)
HYDRA_GROUPS = ["hydra/launcher", "hydra/sweeper"]
SWEEPING_COMMAND = "train"
# options that ask the user for one key (`???`): where their data lives
REQUIRED = {
    ("data", "manifest"): ["data.manifest=/data/manifest.csv"],
    ("data", "folder"): ["data.root=/data/images"],
    ("data", "paired"): ["data.root=/data/rig"],
}


def _groups_of(command: str) -> dict[str, str]:
    """{override key: group} of the groups in `command`'s defaults tree (project groups and
    `HYDRA_GROUPS`); the key keeps the package a group is placed at (`data/augment@...`)."""
    choices = compose(command).hydra.runtime.choices
    keys = {}
    for key in choices:
        group = key.split("@", 1)[0]
        if group in HYDRA_GROUPS:
            if command == SWEEPING_COMMAND:
                keys[key] = group
        elif group != "hydra" and not group.startswith("hydra/"):
            keys[key] = group
    return keys


def _options(group: str) -> list[str]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return GlobalHydra.instance().config_loader().get_group_options(group)


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for command in COMMANDS:
        for key, group in _groups_of(command).items():
            cases += [(command, key, option) for option in _options(group)]
    return cases


CASES = _cases()


def _targets(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(config path, `_target_`) of every node that has one."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            found.append((path or "<root>", node["_target_"]))
        for key, value in node.items():
            found += _targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _targets(value, f"{path}[{i}]")
    return found


def test_every_group_of_every_command_is_covered():
    groups = {(command, group) for command, group, _ in CASES}
    for group in ("data", "model", "trainer", "callbacks", "logger", "paths", "experiment",
                  "hparams_search", "debug", "hydra/launcher", "hydra/sweeper"):  # fmt: skip
        assert ("train", group) in groups, group
    assert ("eval", "trainer") in groups and ("check_data", "data") in groups
    assert ("bench", "bench") in groups
    options = {(command, group, option) for command, group, option in CASES}
    for option in ("cpu", "gpu", "ddp", "ddp_cpu"):
        assert ("train", "trainer", option) in options
    for option in ("local", "parallel", "slurm"):
        assert ("train", "hydra/launcher", option) in options
    assert ("bench", "bench", "quick") in options


@pytest.mark.parametrize(("command", "group", "option"), CASES, ids=lambda v: str(v))
def test_option_composes_resolves_and_its_targets_import(command, group, option, tmp_path: Path):
    required = REQUIRED.get((group, option), [])
    # resolving the run dir claims (creates) a new run folder: under tmp_path, not the repo's
    overrides = [f"{group}={option}", *required, f"paths.root_dir={tmp_path}"]
    cfg = compose(command, overrides, output_dir=tmp_path / "run")
    assert cfg.hydra.runtime.choices[group] == option
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")  # what a CLI run sets
        cfg.hydra.job.num = 0  # and a multirun job (hydra.sweep.subdir)
    HydraConfig.instance().set_config(cfg)
    hydra_node = OmegaConf.to_container(cfg.hydra, resolve=True)
    with open_dict(cfg):
        del cfg["hydra"]
    resolved = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    targets = _targets(resolved) + _targets(
        {k: hydra_node[k] for k in ("launcher", "sweeper", "callbacks")}, "hydra"
    )
    assert targets, "a composed config builds its parts from _target_s"
    for where, target in targets:
        try:
            get_object(target)
        except Exception as error:  # noqa: BLE001 - name the key whatever went wrong
            pytest.fail(f"{command} {group}={option}: {where}._target_={target}: {error}")

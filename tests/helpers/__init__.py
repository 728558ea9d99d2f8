"""Helpers shared by the tests: config composition, CLI runs, TensorBoard readers, tiny data
and tiny models. Fixtures live in tests/conftest.py; everything else the tests share lives here."""

from tests.helpers.config import CONF, ROOT, compose, compose_config
from tests.helpers.data import SIZE_PX, TINY_NET, image_file, mask_file, paired_tree, tiny, tiny_vit
from tests.helpers.runs import (
    copy_run,
    explain_tags,
    run_cli,
    tensorboard_points,
    tensorboard_steps,
)

__all__ = [
    "TINY_NET",
    "CONF",
    "ROOT",
    "SIZE_PX",
    "compose",
    "compose_config",
    "copy_run",
    "explain_tags",
    "image_file",
    "mask_file",
    "paired_tree",
    "run_cli",
    "tensorboard_points",
    "tensorboard_steps",
    "tiny",
    "tiny_vit",
]

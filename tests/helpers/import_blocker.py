"""Run Python code in a fresh interpreter whose import system refuses some packages (the
training stack): the process boundary proves what a module really needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Sequence

from tests.helpers.config import ROOT

TRAINING_STACK = ("torch", "torchvision", "lightning", "timm", "torchmetrics")
CONFIG_STACK = ("hydra", "omegaconf")


def blocker(blocked: Sequence[str]) -> str:
    """Code that makes `import <any of blocked>` fail; `BLOCKED` holds the names."""
    return textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {tuple(blocked)!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
                return None

        sys.meta_path.insert(0, Block())
        """
    )


def run_blocked(
    code: str, blocked: Sequence[str], timeout_s: float = 180
) -> subprocess.CompletedProcess:
    """`code` run by `python -c` from the repository root with `blocked` refused."""
    return subprocess.run(
        [sys.executable, "-c", blocker(blocked) + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )

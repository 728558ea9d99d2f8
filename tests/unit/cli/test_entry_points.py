"""Every entry point has a console script, `make help` lists every target, CI lints before testing."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXPECTED_SCRIPTS = {
    "avit-train",
    "avit-eval",
    "avit-explain",
    "avit-check-data",
    "avit-sweep-report",
}


def _scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_console_scripts_point_at_callable_mains():
    scripts = _scripts()
    assert set(scripts) >= EXPECTED_SCRIPTS
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name


def test_every_module_with_a_main_has_a_console_script():
    targets = {target.partition(":")[0] for target in _scripts().values()}
    mains = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "anomaly_vit").rglob("*.py")
        if re.search(r"^def main\(", path.read_text(), re.MULTILINE)
        and '__name__ == "__main__"' in path.read_text()
    }
    assert mains <= targets, f"modules with a main but no console script: {sorted(mains - targets)}"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_lists_every_target():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    listed = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    shown = set(re.findall(r"^\s+make (\S+)", listed.stdout, re.MULTILINE))
    assert {"help", "train", "test", "lint", "explore", "strip-notebook"} <= targets
    assert targets == shown


def test_ci_lints_then_runs_the_readme_test_command():
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert commands[-1] == "make test"
    assert commands.index("make lint") < commands.index("make test")

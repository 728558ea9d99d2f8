"""`import anomaly_vit.deploy` (and running a bundle) needs only numpy, pillow and onnxruntime.

The process boundary is the point: a fresh interpreter whose import system refuses torch,
torchvision, lightning, timm, hydra and omegaconf imports the package and runs an ONNX bundle.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.helpers.config import ROOT

BLOCKED = ("torch", "torchvision", "lightning", "timm", "hydra", "omegaconf", "torchmetrics")

TRAINING_STACK = ("torch", "torchvision", "lightning", "timm", "torchmetrics")


def blocker(blocked: tuple[str, ...]) -> str:
    """Code that makes importing any of `blocked` (and their submodules) fail."""
    return textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {blocked!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
                return None

        sys.meta_path.insert(0, Block())
        """
    )


BLOCKER = blocker(BLOCKED)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_blocker_blocks_torch():
    """The harness itself: a blocked import fails (else the tests below prove nothing)."""
    result = _run("import anomaly_vit.maps.forward")
    assert result.returncode != 0
    assert "blocked by the test" in result.stderr


def test_deploy_imports_without_the_training_stack():
    result = _run(
        """
        import anomaly_vit, anomaly_vit.deploy
        from anomaly_vit.deploy import Inferencer, BundleError, save_threshold
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_an_onnx_bundle_runs_without_the_training_stack(token_bundle):
    from anomaly_vit.deploy import Inferencer

    gray = np.arange(30 * 50, dtype=np.uint8).reshape(30, 50)
    (expected,) = Inferencer(token_bundle).predict(gray)
    result = _run(
        f"""
        import numpy as np
        from anomaly_vit.deploy import Inferencer
        inferencer = Inferencer({str(token_bundle)!r})
        gray = np.arange(30 * 50, dtype=np.uint8).reshape(30, 50)
        (p,) = inferencer.predict(gray)
        assert p.map.shape == (30, 50) and p.error is None, p
        print(round(p.score, 6))
        """
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == pytest.approx(expected.score, abs=1e-6)


def test_predict_cli_runs_without_torch(token_bundle, tmp_path):
    """`python -m anomaly_vit.predict` needs Hydra for its config, not torch, timm or Lightning."""
    from PIL import Image

    Image.new("RGB", (40, 24), (90, 90, 90)).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    code = blocker(TRAINING_STACK) + textwrap.dedent(
        f"""
        import runpy
        sys.argv = ["predict", "bundle={token_bundle}", "input={tmp_path / "photo.png"}",
                    "hydra.run.dir={out}"]
        runpy.run_module("anomaly_vit.predict", run_name="__main__")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 photo(s)" in result.stdout
    assert (out / "predictions.csv").read_text().count("\n") == 2  # header and the photo

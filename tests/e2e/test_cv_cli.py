"""`python -m anomaly_vit.cv` as a user runs it: one cv folder, carried on in without rerunning
a finished fold, and a bad cv.folds as one line and exit code 1 (the process boundary is the
point: Hydra's run dir, the console output, the exit code)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli
from tests.helpers.defect_set import cv_overrides, make_defect_set


@pytest.mark.slow
def test_the_cv_command_writes_one_folder_and_carries_on_in_it(tmp_path):
    manifest = make_defect_set(tmp_path / "data")
    overrides = cv_overrides(manifest, tmp_path, "cv.folds=3")
    first = run_cli("anomaly_vit.cv", *overrides, cwd=tmp_path)
    (cv_dir,) = (tmp_path / "outputs" / "cv").iterdir()
    summary = json.loads((cv_dir / "cv_summary.json").read_text())
    assert summary["pooled"]["n_images"] == 24 and "auroc" in first.stdout
    assert "Trainer.fit" in first.stdout + first.stderr  # what a fold that trains says
    again = run_cli("anomaly_vit.cv", *overrides, f"cv.dir={cv_dir}", cwd=tmp_path)
    said = again.stdout + again.stderr
    assert all(f"fold {k} is finished" in said for k in range(3))
    assert "Trainer.fit" not in said and len(list((tmp_path / "outputs" / "cv").iterdir())) == 1
    bad = run_cli("anomaly_vit.cv", *overrides, "cv.folds=13", cwd=tmp_path, check=False)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert len(errors) == 1 and "cv.folds=13 is more than the 4 defective item(s)" in errors[0]

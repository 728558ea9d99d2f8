"""The operator page runs on the export bundle and the light inferencer only: a fresh
interpreter that refuses the training stack (and, for the page itself, Hydra) builds the page
on an exported smoke bundle and answers a photo. The process boundary is the point."""

from __future__ import annotations

import pytest

from tests.helpers.import_blocker import CONFIG_STACK, TRAINING_STACK, run_blocked


def test_the_blocker_blocks():
    result = run_blocked("import torch", TRAINING_STACK)
    assert result.returncode != 0 and "blocked by the test" in result.stderr


def test_page_answers_a_photo_without_training_stack_or_hydra(token_bundle, tmp_path):
    from PIL import Image

    photo = tmp_path / "part.png"
    Image.new("RGB", (80, 60), (120, 130, 140)).save(photo)
    result = run_blocked(
        f"""
        from anomaly_vit.deploy import Inferencer, save_threshold
        from anomaly_vit.ui.inspector import Inspector
        from anomaly_vit.ui.page import Look, Page, build_page
        inferencer = Inferencer({str(token_bundle)!r}, threshold=0.0)
        page = Page(Inspector(inferencer, 10**7, 4), {str(token_bundle)!r}, 0.5, "manual",
                    save_threshold, Look())
        build_page(page)
        answer = page.inspect([{str(photo)!r}], "", 0.5)
        results = answer[0]
        assert results[0].score is not None and results[0].problem is None, results
        assert answer[-2].shape == (60, 80, 3), answer[-2].shape  # the outlined photo
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print(round(results[0].score, 6))
        """,
        (*TRAINING_STACK, *CONFIG_STACK),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from anomaly_vit.deploy import Inferencer

    (expected,) = Inferencer(token_bundle).predict(photo)
    assert float(result.stdout) == pytest.approx(expected.score, abs=1e-6)


def test_app_command_builds_the_page_without_the_training_stack(token_bundle):
    result = run_blocked(
        f"""
        from anomaly_vit.cli.app import build_app
        from anomaly_vit.compose import compose
        blocks, page = build_app(compose("app", ["bundle={token_bundle}"], return_hydra_config=False))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print(page.policy, page.threshold)
        """,
        TRAINING_STACK,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[0] == "youden"

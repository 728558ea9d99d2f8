"""The page's browser test skips without a browser only outside CI; in CI it fails."""

from __future__ import annotations

import pytest

from tests.helpers import browser


def test_no_browser_skips_outside_ci_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium chromium-driver"):
        browser.headless_chromium()
    monkeypatch.setenv("CI", "true")
    try:
        browser.headless_chromium()
    except pytest.skip.Exception:  # a skip would hide the missing browser test in CI
        pytest.fail("in CI a missing browser skipped the test instead of failing it")
    except pytest.fail.Exception as failed:
        assert "no browser for the page's end-to-end test" in str(failed)
    else:
        pytest.fail("no browser, yet a driver was returned")

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
    with pytest.raises(pytest.fail.Exception, match="no browser for the page's end-to-end test"):
        browser.headless_chromium()

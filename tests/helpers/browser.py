"""A headless Debian chromium driven by selenium through the system's chromedriver (no browser
download at run time: `make test` installs chromium and chromium-driver when missing)."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser")
DRIVERS = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


def headless_chromium(width: int = 1400, height: int = 1800):
    """A selenium driver on the system's chromium; skips the test when there is none, fails it
    instead when `CI` is set (CI must run the browser test)."""
    browser, driver = _which(BROWSERS), _which(DRIVERS)
    if not (browser and driver):
        reason = (
            f"no browser for the page's end-to-end test (chromium: {browser}, chromedriver: "
            f"{driver}); install them: apt-get install -y chromium chromium-driver "
            "(`make test` does this as root)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(driver), options=options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as error:  # noqa: BLE001 - the page is still changing: try again
            last_error, value = error, None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} ({last_error})")

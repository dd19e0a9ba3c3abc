"""A headless Chromium for the page tests, and what they read from it."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 15
PHONE = {"width": 390, "height": 844}
# How Chromium logs what a Content-Security-Policy blocked: "Refused to ..." in older versions, "Executing
# inline script violates the following Content Security Policy directive ..." in newer ones.
CSP_VIOLATION = re.compile(r"Refused to|Content Security Policy")


def chromium(profile: Path) -> WebDriver:
    """Debian's Chromium, headless, with a new profile in ``profile``; skipped (failed in CI) when missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        reason = f"{', '.join(missing)} not found: install them with `apt-get install chromium chromium-driver`"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests, but {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager must not try to download one (no network here).
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def take_screenshot(driver: WebDriver, target: Path) -> tuple[int, int]:
    """A PNG of the viewport at ``target``; its width and height in pixels."""
    try:
        assert driver.save_screenshot(target)
    except WebDriverException as error:  # pragma: no cover - the message says more than a bare False
        pytest.fail(f"no screenshot: {error}")
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000, "a near-empty screenshot: the page did not render"
    width, height = struct.unpack(">II", data[16:24])
    return width, height

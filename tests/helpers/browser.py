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


# Added to every document the driver loads, before the document's own scripts run: a policy without
# 'unsafe-inline' leaves a test no other way to listen from the start. It records what the policy blocked
# (securitypolicyviolation events) and every URL the page's scripts asked for with fetch or XMLHttpRequest,
# whether or not the request got anywhere; loaded files are in the Resource Timing entries.
WATCH_SCRIPT = """
(() => {
  window.__violations = [];
  window.__requested = [];
  document.addEventListener('securitypolicyviolation', (event) => window.__violations.push({
    directive: event.violatedDirective, blocked: event.blockedURI, source: event.sourceFile, line: event.lineNumber}));
  const absolute = (url) => { try { return new URL(url, location.href).href; } catch (e) { return String(url); } };
  const fetch = window.fetch;
  window.fetch = function (input, init) {
    window.__requested.push(absolute(input instanceof Request ? input.url : input));
    return fetch.apply(this, arguments);
  };
  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url) {
    window.__requested.push(absolute(url));
    return open.apply(this, arguments);
  };
})();
"""


def watch_pages(driver: WebDriver) -> str:
    """Run :data:`WATCH_SCRIPT` in every document loaded from now on; the id :func:`stop_watching` takes."""
    return driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_SCRIPT})["identifier"]


def stop_watching(driver: WebDriver, identifier: str) -> None:
    driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier})


def csp_violations(driver: WebDriver) -> list[dict[str, object]]:
    """What the Content-Security-Policy blocked in the current document (watched by :func:`watch_pages`)."""
    found = driver.execute_script("return window.__violations;")
    assert found is not None, "the document was not watched: call watch_pages before loading it"
    return found


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the current document asked for: itself, the files it loaded and, when watched by
    :func:`watch_pages`, its scripts' requests."""
    requested = driver.execute_script(
        "return [document.URL, ...performance.getEntriesByType('resource').map((entry) => entry.name),"
        " ...(window.__requested || [])];"
    )
    return list(dict.fromkeys(requested))

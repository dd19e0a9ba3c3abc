"""The home page in a real (headless) Chromium against a real gunicorn: what a person sees and gets."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from churn.examples import SAMPLE_CUSTOMER
from churn.schema import CATEGORICAL, NUMERICAL
from tests.helpers.gunicorn import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 15
FEATURES = {name: value for name, value in SAMPLE_CUSTOMER.items() if name in CATEGORICAL or name in NUMERICAL}
RISKY_CHANGES: dict[str, str | int] = {
    "contract": "month-to-month",
    "tenure": 1,
    "internetservice": "fiber_optic",
    "paymentmethod": "electronic_check",
}


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
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
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager must not try to download one (no network here).
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield browser
    browser.quit()


@pytest.fixture
def page(driver: WebDriver, live_server: Server) -> Iterator[WebDriver]:
    """The home page, freshly loaded; afterwards, no JavaScript errors may have been logged."""
    driver.get(f"{live_server.url}/")
    WebDriverWait(driver, WAIT_SECONDS).until(ec.element_to_be_clickable((By.ID, "score")))
    yield driver
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    # A failed request (the 422 of the invalid-input test) is logged by Chromium itself; script errors are not fine.
    assert [entry for entry in errors if "status of 422" not in entry["message"]] == []


def record_requests(driver: WebDriver) -> None:
    """Wrap the page's fetch so the test can read what it sent (and to where)."""
    driver.execute_script(
        "const real = window.fetch; window.sent = [];"
        "window.fetch = (url, init) => { window.sent.push({url: String(url), init: init}); return real(url, init); };"
    )


def api_prediction(server: Server, customer: dict[str, object]) -> dict[str, object]:
    response = requests.post(f"{server.url}/predict", json=customer, timeout=10)
    response.raise_for_status()
    return response.json()


def as_shown(probability: float) -> str:
    return f"{probability * 100:.1f}%"


def score(driver: WebDriver) -> str:
    """Click Score and wait for a probability; its text."""
    driver.find_element(By.ID, "score").click()
    probability = WebDriverWait(driver, WAIT_SECONDS).until(ec.visibility_of_element_located((By.ID, "probability")))
    return probability.text


def set_field(driver: WebDriver, name: str, value: object) -> None:
    if name in CATEGORICAL:
        Select(driver.find_element(By.ID, name)).select_by_value(str(value))
    else:
        element = driver.find_element(By.ID, name)
        element.clear()
        element.send_keys(str(value))


def assert_verdict(driver: WebDriver, churn: bool) -> None:
    verdict = driver.find_element(By.ID, "verdict").text.lower()
    expected = "likely to churn" if churn else "not likely to churn"
    assert verdict.startswith(expected), verdict
    assert "50%" in verdict, f"the threshold is not mentioned: {verdict}"


def test_page_shows_the_form_prefilled_and_scores_the_sample_customer(page: WebDriver, live_server: Server) -> None:
    assert page.title
    for name, allowed in CATEGORICAL.items():
        select = Select(page.find_element(By.CSS_SELECTOR, f"select#{name}[name={name}]"))
        assert [option.get_attribute("value") for option in select.options] == [str(value) for value in allowed]
        assert select.first_selected_option.get_attribute("value") == str(SAMPLE_CUSTOMER[name])
        assert page.find_element(By.CSS_SELECTOR, f"label[for={name}]").text.strip()
    for name in NUMERICAL:
        field = page.find_element(By.CSS_SELECTOR, f"input#{name}[name={name}]")
        assert field.get_attribute("type") == "number"
        assert field.get_attribute("min") == "0"
        assert float(field.get_attribute("value")) == SAMPLE_CUSTOMER[name]
        assert page.find_element(By.CSS_SELECTOR, f"label[for={name}]").text.strip()
    assert not page.find_element(By.ID, "probability").is_displayed()

    record_requests(page)
    expected = api_prediction(live_server, SAMPLE_CUSTOMER)
    assert score(page) == as_shown(expected["churn_probability"])
    assert_verdict(page, expected["churn"])
    assert not page.find_element(By.ID, "error").is_displayed()

    [sent] = page.execute_script("return window.sent;")
    # Relative, so the page works behind a path prefix; JSON with numbers as numbers (the API would
    # also accept "41", so only the body itself shows the page sends the right types).
    assert sent["url"] == "predict"
    assert sent["init"]["method"] == "POST"
    assert sent["init"]["headers"]["Content-Type"] == "application/json"
    assert json.loads(sent["init"]["body"]) == FEATURES


def test_links_are_relative_and_work(page: WebDriver, live_server: Server) -> None:
    for path in ("apidocs/", "model"):
        link = page.find_element(By.CSS_SELECTOR, f'a[href="{path}"]')
        assert link.text.strip()
        assert requests.get(link.get_attribute("href"), timeout=10).status_code == 200


def test_changed_fields_change_the_prediction(page: WebDriver, live_server: Server) -> None:
    before = score(page)
    customer = {**FEATURES, **RISKY_CHANGES}
    expected = api_prediction(live_server, customer)
    assert expected["churn"], f"the changes were meant to make a churner: {expected}"
    for name, value in RISKY_CHANGES.items():
        set_field(page, name, value)

    shown = as_shown(expected["churn_probability"])
    page.find_element(By.ID, "score").click()
    WebDriverWait(page, WAIT_SECONDS).until(ec.text_to_be_present_in_element((By.ID, "probability"), shown))
    assert page.find_element(By.ID, "probability").text == shown != before
    assert_verdict(page, churn=True)


def test_server_errors_are_shown_on_the_field(page: WebDriver) -> None:
    score(page)
    tenure = page.find_element(By.ID, "tenure")
    # Past the browser's own checks, as a script or an old browser would send it.
    page.execute_script(
        "arguments[0].removeAttribute('min'); arguments[0].removeAttribute('required'); arguments[0].value = '-5';",
        tenure,
    )
    page.find_element(By.ID, "score").click()
    error = WebDriverWait(page, WAIT_SECONDS).until(ec.visibility_of_element_located((By.ID, "error")))

    assert "tenure" in error.text
    assert "negative" in error.text
    assert tenure.get_attribute("aria-invalid") == "true"
    assert "must not be negative" in page.find_element(By.ID, "tenure-error").text
    assert not page.find_element(By.ID, "probability").is_displayed()
    assert not page.find_element(By.ID, "result").is_displayed(), "the last result (its bar) is still shown"
    assert not page.find_element(By.ID, "verdict").is_displayed()

    # Fixing the value clears the mark, and the next score replaces the error.
    set_field(page, "tenure", 41)
    assert tenure.get_attribute("aria-invalid") is None
    score(page)
    assert not page.find_element(By.ID, "error").is_displayed()


def test_unreachable_service_is_explained(page: WebDriver) -> None:
    # Simulates a dropped connection: fetch rejects, as it does offline.
    page.execute_script("window.fetch = () => Promise.reject(new TypeError('Failed to fetch'));")
    page.find_element(By.ID, "score").click()
    error = WebDriverWait(page, WAIT_SECONDS).until(ec.visibility_of_element_located((By.ID, "error")))
    assert "could not reach" in error.text.lower()
    assert page.find_element(By.ID, "score").is_enabled()


def test_screenshot(page: WebDriver, tmp_path: Path) -> None:
    score(page)
    target = tmp_path / "page.png"
    try:
        assert page.save_screenshot(target)
    except WebDriverException as error:  # pragma: no cover - the message says more than a bare False
        pytest.fail(f"no screenshot: {error}")
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800
    assert height >= 600
    assert len(data) > 20_000, "a near-empty screenshot: the page did not render"

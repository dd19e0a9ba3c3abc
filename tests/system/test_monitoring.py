"""Monitoring against real components: PostgreSQL, a window of a million predictions, and the page in Chromium.

The page is served by the app in a thread of this process (werkzeug's server), with the monitoring
endpoints among its routes, so that each test can fill the log the page reads.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.engine import URL
from werkzeug.serving import make_server

from benchmarks.monitoring import START, replay, telco_log
from churn.app import create_app
from churn.log_sinks import database_url
from churn.model import ChurnModel
from churn.monitoring import Monitor, MonitoringSettings, Window
from churn.outcomes import Outcome
from churn.settings import Settings
from churn.training import DATA_FILE, Dataset, load_dataset
from tests.helpers.browser import CSP_VIOLATION, PHONE, WAIT_SECONDS, take_screenshot
from tests.helpers.databases import Postgres, running
from tests.helpers.gunicorn import free_port

MILLION = 1_000_000


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running(Postgres) as server:
        yield server


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(DATA_FILE)


def log_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> URL:
    if kind == "sqlite":
        return database_url(f"sqlite:///{tmp_path / 'predictions.db'}")
    server: Postgres = request.getfixturevalue("postgres")
    return database_url(server.new_database(f"monitoring_{uuid.uuid4().hex[:12]}"))


def fill(url: URL, model: ChurnModel, dataset: Dataset, monitor: Monitor) -> None:
    """The Telco customers as traffic, each with their real outcome."""
    replay(url, dataset.customers, model.predict_proba(dataset.customers), "telco-")
    monitor.record(
        [Outcome(f"telco-{i}", None, bool(y), START + timedelta(days=365)) for i, y in enumerate(dataset.churn)]
    )


def test_postgresql_gives_the_figures_sqlite_gives(
    model: ChurnModel, dataset: Dataset, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    figures = {}
    for kind in ("sqlite", "postgresql"):
        url = log_url(kind, tmp_path, request)
        monitor = Monitor(url, model.metadata["reference"], MonitoringSettings())  # type: ignore[arg-type]
        try:
            fill(url, model, dataset, monitor)
            figures[kind] = (monitor.drift(Window(since=START)), monitor.performance(Window(since=START)))
        finally:
            monitor.close()
    (sqlite_drift, sqlite_performance), (pg_drift, pg_performance) = figures["sqlite"], figures["postgresql"]
    assert pg_drift["rows"] == sqlite_drift["rows"] == len(dataset.customers)
    for pg, lite in zip(
        [*pg_drift["features"], pg_drift["probability"]],
        [*sqlite_drift["features"], sqlite_drift["probability"]],
        strict=True,
    ):  # type: ignore[misc]
        assert pg["name"] == lite["name"]
        assert pg["psi"] == pytest.approx(lite["psi"])
        assert pg["current"] == pytest.approx(lite["current"])
    assert pg_drift["timeline"] == sqlite_drift["timeline"]
    assert pg_performance["labelled"] == len(dataset.customers)
    assert pg_performance["auc"] == pytest.approx(sqlite_performance["auc"])
    assert pg_performance["auc"] == pytest.approx(model.metadata["test_auc"], abs=0.05)
    for pg_week, sqlite_week in zip(pg_performance["weeks"], sqlite_performance["weeks"], strict=True):  # type: ignore[call-overload]
        assert (pg_week["start"], pg_week["labelled"]) == (sqlite_week["start"], sqlite_week["labelled"])
        assert pg_week["auc"] == pytest.approx(sqlite_week["auc"])
        assert [b["observed"] for b in pg_week["calibration"]] == pytest.approx(
            [b["observed"] for b in sqlite_week["calibration"]]
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_window_of_a_million_predictions(
    kind: str, model: ChurnModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Answered by aggregates whatever the window holds; benchmarks/monitoring.py measures how long it takes.
    url = log_url(kind, tmp_path, request)
    monitor = Monitor(url, model.metadata["reference"], MonitoringSettings())  # type: ignore[arg-type]
    try:
        telco_log(url, MILLION, monitor)
        drift = monitor.drift(Window(last=MILLION))
        performance = monitor.performance(Window(last=MILLION))
    finally:
        monitor.close()

    assert drift["rows"] == MILLION
    assert max(feature["psi"] for feature in drift["features"]) < 0.1  # type: ignore[attr-defined]
    assert sum(bucket["rows"] for bucket in drift["timeline"]["buckets"]) == MILLION  # type: ignore[index]
    assert performance["labelled"] == MILLION
    assert sum(week["labelled"] for week in performance["weeks"]) == MILLION  # type: ignore[attr-defined]


class PageServer:
    """The app with the monitoring endpoints, served over HTTP from a thread, logging to an SQLite file."""

    def __init__(self, model: ChurnModel, folder: Path) -> None:
        self.log = database_url(f"sqlite:///{folder / 'predictions.db'}")
        app = create_app(model, Settings(prediction_log=self.log.render_as_string()))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


@pytest.fixture(scope="module")
def page_server(model: ChurnModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    server = PageServer(model, tmp_path_factory.mktemp("monitoring-page"))
    yield server
    server.stop()


def open_monitoring(driver: WebDriver, server: PageServer) -> None:
    driver.get_log("browser")  # What earlier tests left.
    driver.get(f"{server.url}/monitoring")
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.execute_script("return document.body.dataset.state") == "loaded"
    )


def assert_clean_console(driver: WebDriver) -> None:
    log = driver.get_log("browser")
    assert [entry["message"] for entry in log if CSP_VIOLATION.search(entry["message"])] == []
    assert [entry for entry in log if entry["level"] == "SEVERE"] == []


def shown(driver: WebDriver, element_id: str) -> bool:
    return driver.find_element(By.ID, element_id).is_displayed()


def statuses(driver: WebDriver) -> dict[str, str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#psi-table tbody tr")
    return {
        row.get_attribute("data-feature"): row.find_elements(By.TAG_NAME, "td")[2].get_attribute("textContent")
        for row in rows
    }


def test_the_page_in_its_three_states(
    driver: WebDriver, page_server: PageServer, model: ChurnModel, dataset: Dataset, tmp_path: Path
) -> None:
    # Empty: the quiet state explains itself.
    open_monitoring(driver, page_server)
    assert "No predictions logged yet" in driver.find_element(By.ID, "drift-quiet").text
    assert "No predictions logged yet" in driver.find_element(By.ID, "performance-quiet").text
    assert not shown(driver, "drift-figures")
    assert not shown(driver, "performance-figures")
    assert not shown(driver, "notice")
    take_screenshot(driver, tmp_path / "monitoring-empty.png")
    assert_clean_console(driver)

    # Stable: the Telco customers as traffic, with outcomes.
    monitor = Monitor(page_server.log, model.metadata["reference"], MonitoringSettings())  # type: ignore[arg-type]
    fill(page_server.log, model, dataset, monitor)
    monitor.close()
    open_monitoring(driver, page_server)
    assert shown(driver, "drift-figures")
    assert set(statuses(driver).values()) == {"stable"}
    assert driver.find_element(By.ID, "drift").get_attribute("data-state") == "stable"
    assert "AUC 0.8" in driver.find_element(By.ID, "performance-summary").text
    assert len(driver.find_elements(By.CSS_SELECTOR, "#histograms canvas")) == 3
    take_screenshot(driver, tmp_path / "monitoring-stable.png")
    assert_clean_console(driver)

    # Drifted: the last 10,000 are mostly a shifted copy.
    shifted = [
        {**c, "contract": "month-to-month", "monthlycharges": c["monthlycharges"] * 1.5,  # type: ignore[operator]
         "totalcharges": c["totalcharges"] * 1.5}  # type: ignore[operator]
        for c in dataset.customers
    ]  # fmt: skip
    replay(page_server.log, shifted, model.predict_proba(shifted), "shifted-", start=START + timedelta(days=60))  # type: ignore[arg-type]
    open_monitoring(driver, page_server)
    found = statuses(driver)
    assert {name for name, status in found.items() if status == "act"} >= {"contract", "monthlycharges"}
    assert driver.find_element(By.ID, "drift").get_attribute("data-state") == "act"
    titles = [title.text for title in driver.find_elements(By.CSS_SELECTOR, "#histograms h4")]
    assert titles[0].startswith("monthlycharges"), titles
    width, _ = take_screenshot(driver, tmp_path / "monitoring-drifted.png")
    assert width >= 800
    assert_clean_console(driver)

    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "deviceScaleFactor": 1, "mobile": True})
    try:
        open_monitoring(driver, page_server)
        # Nothing wider than the screen: no sideways scrolling.
        assert driver.execute_script("return document.documentElement.scrollWidth;") <= PHONE["width"]
        assert take_screenshot(driver, tmp_path / "monitoring-drifted-phone.png") == (PHONE["width"], PHONE["height"])
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert_clean_console(driver)

"""The API docs in a real (headless) Chromium against a real gunicorn: Swagger UI over the service's own document,
everything from the service's own origin, within its Content-Security-Policy, with nothing in the console."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import flask_swagger_ui
import pytest
import requests
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from churn.apidocs import DOCS_ROUTE, SPEC_ROUTE
from churn.openapi import DOCUMENT
from tests.helpers.browser import (
    CSP_VIOLATION,
    WAIT_SECONDS,
    csp_violations,
    requested_urls,
    stop_watching,
    take_screenshot,
    watch_pages,
)
from tests.helpers.gunicorn import Server

TITLE = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))["info"]["title"]
# The Swagger UI the pinned package ships ("v5.34.0").
SWAGGER_UI_VERSION = (Path(flask_swagger_ui.__file__).parent / "dist" / "VERSION").read_text().strip().removeprefix("v")
# A document's title, or the heading Swagger UI shows when it could not load one (not its "loading" spinner).
RENDERED = "#swagger-ui .information-container .title, #swagger-ui .loading-container .title"
# What ?url= and ?configUrl= would make Swagger UI load, were its query-string configuration on: another origin
# (which the CSP would also refuse) and this one (which only the configuration setting keeps out).
ELSEWHERE = "http://evil.example/spec.json"
SAME_ORIGIN = "/model"


@contextmanager
def open_docs(driver: WebDriver, server: Server, query: str = "") -> Iterator[WebDriver]:
    """``server``'s API docs, freshly loaded and watched from the start (see ``watch_pages``) until shown."""
    console(driver)  # What earlier tests left.
    watch = watch_pages(driver)
    try:
        driver.get(f"{server.url}{DOCS_ROUTE}{query}")
        WebDriverWait(driver, WAIT_SECONDS).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, RENDERED)),
            "Swagger UI showed neither a document's title nor that it failed to load one",
        )
        yield driver
    finally:
        stop_watching(driver, watch)


@pytest.fixture
def docs(live_server: Server, driver: WebDriver) -> Iterator[WebDriver]:
    with open_docs(driver, live_server) as page:
        yield page


def shown_title(driver: WebDriver) -> str:
    """The document's title as the page shows it, without the version badges Swagger UI puts beside it."""
    found = driver.find_elements(By.CSS_SELECTOR, "#swagger-ui .information-container .title")
    if not found:
        errors = driver.find_elements(By.CSS_SELECTOR, "#swagger-ui .loading-container, #swagger-ui .errors-wrapper")
        pytest.fail(f"the page shows no document: {' / '.join(element.text for element in errors)!r}")
    return driver.execute_script("return arguments[0].firstChild.textContent;", found[0]).strip()


def shown_operations(driver: WebDriver) -> list[str]:
    """The operations the page lists, as "METHOD /path"."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#swagger-ui .opblock .opblock-summary')].map((summary) =>"
        " summary.querySelector('.opblock-summary-method').textContent.trim() + ' ' +"
        " summary.querySelector('.opblock-summary-path').dataset.path);"
    )


def documented_operations(server: Server) -> list[str]:
    document = requests.get(f"{server.url}{SPEC_ROUTE}", timeout=10).json()
    return [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item]


def elsewhere(server: Server, urls: list[str]) -> list[str]:
    """The URLs not on ``server``'s origin."""
    origin = urlsplit(server.url)[:2]
    return [url for url in urls if urlsplit(url)[:2] != origin]


def console(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser's console since the last call (the fixture's driver is Chromium's, which keeps it)."""
    return driver.get_log("browser")  # type: ignore[attr-defined]


def severe_entries(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in console(driver) if entry["level"] == "SEVERE"]


def operation(driver: WebDriver, operation_id: str) -> WebElement:
    """An operation's block, opened."""
    block = driver.find_element(By.ID, f"operations-default-{operation_id}")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    WebDriverWait(driver, WAIT_SECONDS).until(lambda _: "is-open" in (block.get_attribute("class") or "").split())
    return block


def clickable(driver: WebDriver, block: WebElement, selector: str) -> WebElement:
    """The element at ``selector`` in ``block``, once shown and enabled (Swagger UI renders an opened block later)."""
    within = (By.CSS_SELECTOR, f"#{block.get_attribute('id')} {selector}")
    return WebDriverWait(driver, WAIT_SECONDS).until(ec.element_to_be_clickable(within), f"no {selector} to click")


def test_docs_show_the_services_own_document_with_the_pinned_swagger_ui(docs: WebDriver, live_server: Server) -> None:
    assert TITLE
    assert shown_title(docs) == TITLE
    WebDriverWait(docs, WAIT_SECONDS).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#swagger-ui .opblock")))
    shown = shown_operations(docs)
    assert {"POST /predict", "POST /predict_file", "GET /health", "GET /ready", "GET /model"} <= set(shown)
    assert sorted(shown) == sorted(documented_operations(live_server))
    # The page runs the package's Swagger UI, not some other copy.
    assert docs.execute_script("return window.versions.swaggerUI.version;") == SWAGGER_UI_VERSION
    assert f"{live_server.url}{SPEC_ROUTE}" in requested_urls(docs)


def test_docs_pass_the_content_security_policy_with_a_clean_console(docs: WebDriver, live_server: Server) -> None:
    # The policy is on, as it is for the home page: without it, nothing here would show the docs work under it.
    policy = requests.get(f"{live_server.url}{DOCS_ROUTE}", timeout=10).headers.get("Content-Security-Policy", "")
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"):
        assert directive in policy, policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    # Open an operation, so Swagger UI renders its schemas, examples and highlighted code too.
    operation(docs, "post_predict")
    WebDriverWait(docs, WAIT_SECONDS).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#operations-default-post_predict .responses-wrapper"))
    )
    assert csp_violations(docs) == []
    log = console(docs)
    assert [entry["message"] for entry in log if CSP_VIOLATION.search(entry["message"])] == []
    assert [entry["message"] for entry in log if entry["level"] == "SEVERE"] == []


def test_docs_load_nothing_from_other_origins(docs: WebDriver, live_server: Server) -> None:
    requested = requested_urls(docs)
    for path in ("swagger-ui.css", "swagger-ui-bundle.js", "../static/apidocs/init.js", "../apispec.json"):
        url = urljoin(f"{live_server.url}{DOCS_ROUTE}", path)
        assert url in requested, f"{url} not among {requested}"
    assert elsewhere(live_server, requested) == []
    # What the page would load but may not have yet (or at all): its own origin too. Links (<a>) load nothing.
    referred = docs.execute_script(
        "return [...document.querySelectorAll('script[src], link[href], img[src], iframe[src], source[src],"
        " embed[src], object[data]')].map((e) => e.src || e.href || e.data)"
        ".filter((url) => typeof url === 'string' && !url.startsWith('data:'));"
    )
    assert elsewhere(live_server, referred) == []
    assert csp_violations(docs) == []


@pytest.mark.parametrize(
    "query",
    [
        f"?url={ELSEWHERE}",
        f"?configUrl={ELSEWHERE}",
        f"?url={SAME_ORIGIN}",
        f"?configUrl={SAME_ORIGIN}",
    ],
)
def test_the_query_string_cannot_change_the_document(driver: WebDriver, live_server: Server, query: str) -> None:
    # Were Swagger UI's query-string configuration on, a link to this origin's docs could show anyone's
    # document under this origin's name: a fake "log in again" operation, say.
    with open_docs(driver, live_server, query) as page:
        assert urlsplit(page.current_url).query == query[1:], "the query string did not reach the page"
        assert shown_title(page) == TITLE
        WebDriverWait(page, WAIT_SECONDS).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#swagger-ui .opblock"))
        )
        requested = requested_urls(page)
        assert f"{live_server.url}{SPEC_ROUTE}" in requested
        targets = {urlsplit(ELSEWHERE)[:3], urlsplit(f"{live_server.url}{SAME_ORIGIN}")[:3]}
        assert [url for url in requested if urlsplit(url)[:3] in targets] == []
        assert elsewhere(live_server, requested) == []
        assert csp_violations(page) == []
        assert severe_entries(page) == []


def test_try_it_out_calls_the_service_from_the_page(docs: WebDriver, live_server: Server) -> None:
    # Swagger UI's request goes to this origin with fetch: the policy's connect-src lets the docs work.
    block = operation(docs, "get_health")
    clickable(docs, block, ".try-out__btn").click()
    clickable(docs, block, "button.execute").click()
    status = WebDriverWait(docs, WAIT_SECONDS).until(
        lambda _: block.find_element(By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")
    )
    assert status.text.strip() == "200"
    body = block.find_element(By.CSS_SELECTOR, ".live-responses-table .response-col_description pre.microlight code")
    shown = json.loads(body.get_attribute("textContent") or "")
    assert shown == requests.get(f"{live_server.url}/health", timeout=10).json()
    assert shown["status"] == "ok"
    assert f"{live_server.url}/health" in requested_urls(docs)
    assert elsewhere(live_server, requested_urls(docs)) == []
    assert csp_violations(docs) == []
    assert severe_entries(docs) == []


def test_screenshot(docs: WebDriver, tmp_path: Path) -> None:
    WebDriverWait(docs, WAIT_SECONDS).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#swagger-ui .opblock")))
    width, height = take_screenshot(docs, tmp_path / "apidocs.png")
    assert width >= 800
    assert height >= 600

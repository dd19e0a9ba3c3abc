"""Shared fixtures: the committed model, apps built from it, a real gunicorn; and each test's kind from its folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium.webdriver.remote.webdriver import WebDriver

from churn.app import create_app
from churn.model import ChurnModel, load_model
from churn.settings import Settings
from tests.helpers import data
from tests.helpers.browser import chromium
from tests.helpers.gunicorn import Server, start_gunicorn, stop

TESTS = Path(__file__).parent
# The folder says what a test needs: unit (nothing), http (the Flask test client), system (real processes).
KINDS = ("unit", "http", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = item.path.relative_to(TESTS).parts[0]
        if kind in KINDS:
            item.add_marker(kind)


@pytest.fixture(scope="session")
def course_frame() -> pd.DataFrame:
    return data.course_frame()


@pytest.fixture(scope="session")
def model() -> ChurnModel:
    return load_model(Settings().model_path)


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def app(model: ChurnModel, settings: Settings) -> Flask:
    return create_app(model, settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def client_with(model: ChurnModel) -> Callable[..., FlaskClient]:
    """A test client of the committed model under settings changed by keyword: ``client_with(threshold=0.3)``."""

    def make(**changes: object) -> FlaskClient:
        return create_app(model, Settings(**changes)).test_client()  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    browser = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_gunicorn(tmp_path_factory.mktemp("gunicorn") / "gunicorn.log")
    yield server
    stop(server)

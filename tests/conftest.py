"""Shared fixtures: the committed model, apps built from it, and a real gunicorn to talk to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from churn.app import create_app
from churn.model import ChurnModel, load_model
from churn.settings import PROJECT_DIR, Settings
from churn.training import DATA_FILE

GUNICORN = Path(sys.executable).with_name("gunicorn")
COURSE_FEATURES = [
    "gender", "seniorcitizen", "partner", "dependents", "phoneservice", "multiplelines", "internetservice",
    "onlinesecurity", "onlinebackup", "deviceprotection", "techsupport", "streamingtv", "streamingmovies",
    "contract", "paperlessbilling", "paymentmethod", "tenure", "monthlycharges", "totalcharges",
]  # fmt: skip


@pytest.fixture(scope="session")
def course_frame() -> pd.DataFrame:
    """The data cleaned the course's way, in pandas, written apart from churn.schema to check it."""
    df = pd.read_csv(DATA_FILE)
    df.columns = df.columns.str.lower().str.replace(" ", "_")
    # The course selects dtype object; pandas 3 gives text columns the str dtype instead.
    for column in df.select_dtypes(include=["object", "string"]).columns:
        df[column] = df[column].str.lower().str.replace(" ", "_")
    df["totalcharges"] = pd.to_numeric(df["totalcharges"], errors="coerce").fillna(0)
    df["churn"] = (df["churn"] == "yes").astype(int)
    return df


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """A running ``gunicorn predict:app`` and where its output goes."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()


def start_gunicorn(log: Path, env: dict[str, str] | None = None, wait: bool = True) -> Server:
    """Start ``gunicorn predict:app`` from the project folder, as the README says, on a free port."""
    port = free_port()
    environ = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "2", **(env or {})}
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(GUNICORN), "predict:app"],
            cwd=PROJECT_DIR,
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while wait:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{server.output()}")
        try:
            if requests.get(f"{server.url}/ping", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            stop(server)
            pytest.fail(f"gunicorn did not answer /ping within 60 s:\n{server.output()}")
        time.sleep(0.1)
    return server


def stop(server: Server) -> int:
    """SIGTERM, as Docker and EB send it; the exit status."""
    server.process.terminate()
    try:
        return server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_gunicorn(tmp_path_factory.mktemp("gunicorn") / "gunicorn.log")
    yield server
    stop(server)

"""/feedback, /monitoring/drift, /monitoring/performance and the /monitoring page through the Flask test client."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from benchmarks.monitoring import replay
from churn.log_sinks import database_url
from churn.model import ChurnModel
from churn.monitoring import NO_OUTCOMES, NO_PREDICTIONS
from churn.training import DATA_FILE, load_dataset

KEY = "monitor-key"
AUTH = {"Authorization": f"Bearer {KEY}"}

Client = Callable[..., FlaskClient]


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'predictions.db'}"


@pytest.fixture
def client(client_with: Client, log_url: str) -> FlaskClient:
    return client_with(prediction_log=log_url, api_keys=(KEY,))


def test_data_endpoints_need_the_key_and_the_page_does_not(client: FlaskClient) -> None:
    for method, path in (("POST", "/feedback"), ("GET", "/monitoring/drift"), ("GET", "/monitoring/performance")):
        response = client.open(path, method=method, json={})
        assert response.status_code == 401, path
        assert response.mimetype == "application/problem+json"
    page = client.get("/monitoring")
    assert page.status_code == 200
    assert page.mimetype == "text/html"


def test_feedback_is_stored_and_the_figures_follow(client: FlaskClient, log_url: str, model: ChurnModel) -> None:
    dataset = load_dataset(DATA_FILE)
    customers, churned = dataset.customers[:400], list(dataset.churn[:400])
    replay(database_url(log_url), customers, model.predict_proba(customers), "cust-")

    assert client.get("/monitoring/performance", headers=AUTH).json["message"] == NO_OUTCOMES
    outcomes = [{"customerID": f"cust-{i}", "churned": bool(y)} for i, y in enumerate(churned)]
    response = client.post("/feedback", json=outcomes, headers=AUTH)
    assert response.status_code == 200
    assert response.json == {"recorded": 400}
    assert client.post("/feedback", json=outcomes[0], headers=AUTH).json == {"recorded": 1}

    performance = client.get("/monitoring/performance?last=400", headers=AUTH)
    assert performance.status_code == 200
    assert performance.headers["Cache-Control"] == "no-store"
    assert performance.json["labelled"] == 400
    assert performance.json["churned"] == sum(churned)
    assert 0.5 < performance.json["auc"] <= 1.0
    drift = client.get("/monitoring/drift?since=2020-01-01", headers=AUTH).json
    assert drift["rows"] == 400
    assert drift["window"] == {"since": "2020-01-01T00:00:00+00:00", "until": None}
    assert {feature["name"] for feature in drift["features"]} == {*dataset.customers[0]}


def test_feedback_is_refused_as_predict_refuses(client: FlaskClient) -> None:
    not_json = client.post("/feedback", data="customerid=1", content_type="text/plain", headers=AUTH)
    assert not_json.status_code == 415
    malformed = client.post("/feedback", data="{", content_type="application/json", headers=AUTH)
    assert malformed.status_code == 400
    invalid = client.post("/feedback", json=[{"customerid": "a", "churned": True}, {"churned": 1}], headers=AUTH)
    assert invalid.status_code == 422
    assert invalid.mimetype == "application/problem+json"
    assert [(e["index"], e["field"]) for e in invalid.json["errors"]] == [(1, "customerid"), (1, "churned")]


def test_large_feedback_batches_are_refused(client_with: Client, log_url: str) -> None:
    client = client_with(prediction_log=log_url, max_batch_size=2)
    response = client.post("/feedback", json=[{"customerid": str(i), "churned": False} for i in range(3)])
    assert response.status_code == 413
    # Refused at the third outcome, before the rest of the body is read: what follows is not even JSON.
    body = json.dumps([{"customerid": str(i), "churned": False} for i in range(3)])[:-1] + ", {not json"
    response = client.post("/feedback", data=body, content_type="application/json")
    assert response.status_code == 413
    assert (
        response.json["detail"] == "The batch has more than 2 outcomes; the limit is 2. Split it into smaller requests."
    )


def test_a_bad_window_is_a_400(client: FlaskClient) -> None:
    response = client.get("/monitoring/drift?last=0", headers=AUTH)
    assert response.status_code == 400
    assert "at least 1" in response.json["detail"]


def test_an_empty_log_says_so(client: FlaskClient) -> None:
    assert client.get("/monitoring/drift", headers=AUTH).json == {
        "window": {"last": 10_000},
        "thresholds": {"watch": 0.1, "act": 0.25},
        "rows": 0,
        "message": NO_PREDICTIONS,
    }


@pytest.mark.parametrize("log", [None, "stdout"])
def test_without_an_sql_log_monitoring_says_why(client_with: Client, log: str | None) -> None:
    client = client_with(prediction_log=log)
    response = client.get("/monitoring/drift")
    assert response.status_code == 503
    assert "CHURN_PREDICTION_LOG" in response.json["detail"]
    assert client.post("/feedback", json={"customerid": "a", "churned": True}).status_code == 503
    page = client.get("/monitoring").get_data(as_text=True)
    assert "CHURN_PREDICTION_LOG" in page


def test_the_page_has_nothing_inline_and_links_files_the_service_serves(client: FlaskClient) -> None:
    html = client.get("/monitoring").get_data(as_text=True)
    assert client.get("/monitoring").headers["Content-Security-Policy"].startswith("default-src 'self'")
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert all('type="application/json"' in attributes or not body.strip() for attributes, body in scripts)
    assert " style=" not in html
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+=", html)
    for path in re.findall(r'(?:src|href)="(static/[^"]+)"', html):
        with client.get(f"/{path}") as response:
            assert response.status_code == 200, path
    assert "static/vendor/chartjs/chart.umd.min.js" in html

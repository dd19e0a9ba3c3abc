"""Operating the service: API keys, request ids, security headers, JSON request logs, metrics and readiness."""

import gc
import io
import json
import sqlite3
import time

import pandas as pd
import pytest

from churn.app import create_app, warm_up
from churn.examples import SAMPLE_CUSTOMER
from churn.settings import Settings
from churn.training import DATA_FILE

KEY = "k-3f9a1c7e55"
OPEN_PATHS = ("/ping", "/health", "/ready", "/", "/apidocs/", "/apispec.json", "/metrics")


@pytest.fixture
def locked(client_with):
    return client_with(api_keys=(KEY, "another-key"))


def test_without_a_key_data_endpoints_are_refused_with_a_bearer_challenge(locked):
    for response in (
        locked.post("/predict", json=SAMPLE_CUSTOMER),
        locked.post("/predict_file", data={"file": (io.BytesIO(b"a\n1\n"), "c.csv")}),
        locked.get("/model"),
    ):
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "API key" in response.get_json()["detail"]


def test_a_wrong_key_is_refused_and_never_echoed(locked):
    response = locked.post("/predict", json=SAMPLE_CUSTOMER, headers={"Authorization": "Bearer nope-" + KEY})
    assert response.status_code == 401
    assert response.get_json()["detail"] == "The API key is not valid."
    assert KEY not in response.text


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}"}, {"Authorization": f"bearer {KEY}"}, {"X-API-Key": "another-key"}],
)
def test_any_configured_key_in_either_header_is_accepted(locked, headers):
    response = locked.post("/predict", json=SAMPLE_CUSTOMER, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["churn"] is False


def test_probes_the_page_and_the_docs_stay_open(locked):
    for path in OPEN_PATHS:
        response = locked.get(path)
        assert response.status_code == 200, path
        response.close()


def test_keys_come_from_a_mounted_file_too(model, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# rotated 2026-11\nfile-key-1\n\n  file-key-2  \n")
    client = create_app(model, Settings(api_keys_file=keys)).test_client()
    assert client.post("/predict", json=SAMPLE_CUSTOMER).status_code == 401
    assert client.post("/predict", json=SAMPLE_CUSTOMER, headers={"X-API-Key": "file-key-2"}).status_code == 200


def test_settings_never_show_the_keys(tmp_path):
    settings = Settings.from_env({"CHURN_API_KEYS": f"{KEY}, second"})
    assert settings.api_keys == (KEY, "second")
    assert KEY not in repr(settings)


def test_every_response_carries_a_request_id_and_a_callers_valid_one_is_kept(client):
    kept = client.post("/predict", json=SAMPLE_CUSTOMER, headers={"X-Request-ID": "order-42:retry.1"})
    assert kept.headers["X-Request-ID"] == "order-42:retry.1"
    generated = {client.get(path).headers["X-Request-ID"] for path in ("/ping", "/nowhere", "/")}
    assert len(generated) == 3
    assert all(len(value) == 32 for value in generated)


@pytest.mark.parametrize("given", ["", "has space", "x" * 129, "tab\there", "é"])
def test_an_unusable_request_id_is_replaced(client, given):
    response = client.get("/ping", headers={"X-Request-ID": given})
    assert response.headers["X-Request-ID"] != given
    assert len(response.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize("path", ["/", "/apidocs/", "/ping", "/nowhere"])
def test_security_headers_on_pages_api_and_errors(client, path):
    headers = client.get(path).headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self';" in headers["Content-Security-Policy"]


def test_json_log_has_one_line_per_request_with_what_operators_need(client_with, capsys):
    client = client_with(log_format="json")
    client.post(
        "/predict",
        json=[SAMPLE_CUSTOMER] * 3,
        headers={"X-Request-ID": "abc-1"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    client.get("/nowhere")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert {key: first[key] for key in ("request_id", "method", "path", "status", "rows", "client")} == {
        "request_id": "abc-1", "method": "POST", "path": "/predict", "status": 200, "rows": 3, "client": "10.1.2.3",
    }  # fmt: skip
    assert first["duration_ms"] > 0
    assert first["time"].endswith("+00:00")
    assert (lines[1]["path"], lines[1]["status"], lines[1]["rows"]) == ("/nowhere", 404, 0)


def test_text_log_format_writes_nothing_of_its_own(client, capsys):
    client.get("/ping")
    assert capsys.readouterr().out == ""


def metric(text, name):
    """The value of one sample line of the Prometheus text format."""
    for line in text.splitlines():
        if line.startswith(name + " ") or (line.startswith(name + "{") and line.partition(" ")[0] == name):
            return float(line.rpartition(" ")[2])
    raise AssertionError(f"{name} not in the metrics")


def test_metrics_count_requests_predictions_and_the_model(client, model):
    client.post("/predict", json=[SAMPLE_CUSTOMER, {**SAMPLE_CUSTOMER, "contract": "month-to-month", "tenure": 1}])
    client.post("/predict", json=SAMPLE_CUSTOMER)
    client.post("/predict", json={"tenure": 1})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.text
    assert metric(text, 'churn_requests_total{endpoint="/predict",status="200"}') == 2
    assert metric(text, 'churn_requests_total{endpoint="/predict",status="422"}') == 1
    assert metric(text, 'churn_predictions_total{decision="churn"}') == 1
    assert metric(text, 'churn_predictions_total{decision="no_churn"}') == 2
    assert metric(text, "churn_prediction_probability_count") == 3
    assert metric(text, 'churn_batch_rows_bucket{le="1.0"}') == 1
    assert metric(text, 'churn_batch_rows_bucket{le="2.0"}') == 2
    assert metric(text, 'churn_request_duration_seconds_bucket{endpoint="/predict",le="0.0001"}') >= 0
    assert metric(text, 'churn_request_duration_seconds_count{endpoint="/predict"}') == 3
    sha = model.metadata["model_sha256"]
    assert metric(text, f'churn_model_info{{c="1.0",sha256="{sha}",sklearn="1.9.1"}}') == 1
    assert metric(text, "churn_prediction_log_dropped_total") == 0


def test_unknown_paths_share_one_metrics_label(client):
    for path in ("/a", "/b/c", "/wp-login.php"):
        client.get(path)
    text = client.get("/metrics").text
    assert metric(text, 'churn_requests_total{endpoint="other",status="404"}') == 3
    assert "wp-login" not in text


def test_metrics_can_be_turned_off(client_with):
    client = client_with(metrics=False)
    assert client.get("/metrics").status_code == 404
    assert client.post("/predict", json=SAMPLE_CUSTOMER).status_code == 200


def test_ready_without_a_prediction_log(client):
    response = client.get("/ready")
    assert (response.status_code, response.get_json()) == (200, {"status": "ready"})


def test_predictions_are_logged_and_ready_says_so(client_with, tmp_path):
    database = tmp_path / "predictions.db"
    client = client_with(prediction_log=f"sqlite:///{database}")
    # As a readiness probe does: the first asks the writer to start, a later one finds it ready.
    deadline = time.monotonic() + 10
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "/ready never answered 200"
        time.sleep(0.05)
    client.post("/predict", json=[SAMPLE_CUSTOMER, SAMPLE_CUSTOMER], headers={"X-Request-ID": "logged-1"})
    client.application.extensions["churn"].prediction_log.close(10)
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT request_id, endpoint, customer_id FROM churn_predictions").fetchall()
    assert rows == [("logged-1", "/predict", "8879-zkjof")] * 2


def test_warm_up_starts_the_log_writer_and_takes_the_loaded_objects_out_of_collections(client_with, tmp_path):
    client = client_with(prediction_log=f"sqlite:///{tmp_path / 'predictions.db'}")
    gc.unfreeze()
    try:
        warm_up(client.application)
        assert gc.get_freeze_count() > 10_000
        # A full collection no longer walks the model, the app and the libraries.
        assert len(gc.get_objects()) < gc.get_freeze_count() / 10
    finally:
        gc.unfreeze()
    deadline = time.monotonic() + 10
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the writer warm_up started never became ready"
        time.sleep(0.05)
    client.application.extensions["churn"].prediction_log.close(1)


def test_ready_is_503_while_the_prediction_log_cannot_be_written(client_with, tmp_path):
    # A directory where the database file should be: SQLite can never open it.
    (tmp_path / "predictions.db").mkdir()
    client = client_with(prediction_log=f"sqlite:///{tmp_path / 'predictions.db'}")
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert client.get("/health").status_code == 200
    assert client.post("/predict", json=SAMPLE_CUSTOMER).status_code == 200
    # The writer would retry for ever: stop it, and with it the record it could not write.
    assert client.application.extensions["churn"].prediction_log.close(0.5) == 1


def test_uploaded_rows_are_logged_with_their_ids(client_with, tmp_path):
    database = tmp_path / "predictions.db"
    client = client_with(prediction_log=f"sqlite:///{database}")
    rows = pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False).head(3)
    upload = {"file": (io.BytesIO(rows.to_csv(index=False).encode()), "c.csv")}
    assert client.post("/predict_file", data=upload, headers={"X-Request-ID": "file-1"}).status_code == 200
    assert client.application.extensions["churn"].prediction_log.close(10) == 0
    with sqlite3.connect(database) as connection:
        logged = connection.execute(
            "SELECT endpoint, customer_id, tenure FROM churn_predictions ORDER BY id"
        ).fetchall()
    assert logged == [("/predict_file", row.customerID, float(row.tenure)) for row in rows.itertuples()]

"""``predict_test.py``, the course's client, against a real gunicorn."""

import json
import os
import subprocess
import sys

import pytest

import predict_test
from churn.examples import SAMPLE_CUSTOMER
from churn.settings import PROJECT_DIR
from tests.helpers.gunicorn import free_port, start_gunicorn, stop


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("http://localhost:9696/predict", "http://localhost:9696/predict"),
        ("localhost:9696/predict", "http://localhost:9696/predict"),
        (
            "churn-serving-env.eba-x.eu-west-1.elasticbeanstalk.com",
            "http://churn-serving-env.eba-x.eu-west-1.elasticbeanstalk.com/predict",
        ),
        ("https://example.org/", "https://example.org/predict"),
        ("http://example.org/churn/predict?key=1", "http://example.org/churn/predict?key=1"),
    ],
)
def test_urls_are_completed(given, used):
    assert predict_test.predict_url(given) == used


@pytest.mark.parametrize("url", ["ftp://example.org/predict", "http://"])
def test_unusable_urls_are_refused(url):
    with pytest.raises(predict_test.ClientError, match="is not an http"):
        predict_test.predict_url(url)


def test_client_sends_the_courses_customer():
    assert predict_test.customer == SAMPLE_CUSTOMER


def run_client(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key not in ("PORT", "CHURN_URL", "CHURN_API_KEY")}
    return subprocess.run(
        [sys.executable, "predict_test.py", *args],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, env={**environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "http://localhost:9696/predict"),
        ({"PORT": "8080"}, "http://localhost:8080/predict"),
        ({"PORT": "8080", "CHURN_URL": "http://churn.internal/predict"}, "http://churn.internal/predict"),
    ],
)
def test_where_the_service_is_comes_from_the_environment(environ, url):
    assert predict_test.default_url(environ) == url


def test_port_variable_finds_the_local_service(live_server):
    port = live_server.url.rpartition(":")[2]
    result = run_client(env={"PORT": port})
    assert result.returncode == 0, result.stderr
    assert "not sending promo email to xyz-123" in result.stdout


def test_api_key_from_the_environment_or_the_option(tmp_path):
    server = start_gunicorn(tmp_path / "gunicorn.log", {"CHURN_API_KEYS": "client-key"})
    try:
        url = f"{server.url}/predict"
        refused = run_client("--url", url)
        assert refused.returncode == 1
        assert "401 Unauthorized" in refused.stderr
        assert run_client("--url", url, env={"CHURN_API_KEY": "client-key"}).returncode == 0
        assert run_client("--url", url, "--api-key", "client-key").returncode == 0
    finally:
        stop(server)


def test_course_run_against_gunicorn(live_server):
    result = run_client("--url", f"{live_server.url}/predict")
    assert result.returncode == 0, result.stderr
    answer, decision = result.stdout.splitlines()
    assert answer.startswith("{'churn_probability': 0.0676")
    assert decision == "not sending promo email to xyz-123"


def test_likely_churner_from_a_file_gets_the_email(live_server, tmp_path):
    churner = {
        **SAMPLE_CUSTOMER,
        "customerid": "abc-1",
        "contract": "month-to-month",
        "tenure": 1,
        "internetservice": "fiber_optic",
        "paymentmethod": "electronic_check",
        "totalcharges": 79.85,
    }
    path = tmp_path / "customer.json"
    path.write_text(json.dumps(churner))
    result = run_client("--url", live_server.url.removeprefix("http://"), "--customer", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "sending promo email to abc-1"


def test_batch_file(live_server, tmp_path):
    path = tmp_path / "customers.json"
    path.write_text(json.dumps([SAMPLE_CUSTOMER, {**SAMPLE_CUSTOMER, "customerid": "second"}]))
    result = run_client("--url", live_server.url, "--customer", str(path))
    assert result.returncode == 0, result.stderr
    decisions = [line for line in result.stdout.splitlines() if "promo email" in line]
    assert decisions == ["not sending promo email to 8879-zkjof", "not sending promo email to second"]


def test_service_error_is_readable_and_fails(live_server, tmp_path):
    path = tmp_path / "customer.json"
    path.write_text(json.dumps({**SAMPLE_CUSTOMER, "contract": "weekly"}))
    result = run_client("--url", live_server.url, "--customer", str(path))
    assert result.returncode == 1
    assert "422 Unprocessable Entity" in result.stderr
    assert "contract: 'weekly' is not one of the allowed values" in result.stderr
    assert "Traceback" not in result.stderr


def test_service_down_is_readable_and_fails():
    result = run_client("--url", f"http://127.0.0.1:{free_port()}/predict")
    assert result.returncode == 1
    assert "is the service running? Start it with `pipenv run gunicorn predict:app`" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_customer_file_fails(tmp_path):
    path = tmp_path / "customer.json"
    path.write_text("{not json")
    result = run_client("--customer", str(path))
    assert result.returncode == 1
    assert "is not valid JSON" in result.stderr

"""The course's command, ``gunicorn predict:app``, with no flags: how it binds, logs, keeps alive and stops."""

import re
import shutil
import signal
import socket
import time

import requests

from churn.examples import SAMPLE_CUSTOMER
from churn.metadata import metadata_path
from churn.metrics import FLUSH_INTERVAL_S
from churn.settings import Settings
from tests.helpers.gunicorn import Server, effective_config, start_gunicorn, stop


def test_configuration_without_flags():
    config = effective_config()
    assert config["bind"] == "['0.0.0.0:9696']"
    assert int(config["keepalive"]) > 60
    assert config["preload_app"] == "True"
    assert config["worker_class"] == "churn.workers.ChurnWorker"
    assert config["accesslog"] == "-"
    assert int(config["workers"]) >= 2


def test_port_and_workers_from_the_environment():
    config = effective_config(PORT="8080", WEB_CONCURRENCY="3")
    assert config["bind"] == "['0.0.0.0:8080']"
    assert config["workers"] == "3"


def test_listens_on_all_interfaces_and_logs_requests_to_stdout(live_server):
    assert requests.get(f"{live_server.url}/health", timeout=5).json()["status"] == "ok"
    time.sleep(0.2)
    log = live_server.output()
    port = live_server.url.rsplit(":", 1)[1]
    assert f"Listening at: http://0.0.0.0:{port}" in log
    assert '"GET /health HTTP/1.1" 200' in log


def read_response(stream) -> bytes:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += stream.recv(1)
    length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE).group(1))
    body = b""
    while len(body) < length:
        body += stream.recv(length - len(body))
    return head + body


def test_connection_is_kept_alive_between_requests(live_server):
    host, port = live_server.url.removeprefix("http://").split(":")
    request = f"GET /ping HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        for _ in range(3):
            connection.sendall(request)
            response = read_response(connection)
            assert response.startswith(b"HTTP/1.1 200")
            assert response.endswith(b"PONG")


def test_model_that_fails_its_check_stops_the_service(tmp_path):
    source = Settings().model_path
    tampered = tmp_path / source.name
    shutil.copy(source, tampered)
    shutil.copy(metadata_path(source), metadata_path(tampered))
    with tampered.open("ab") as stream:
        stream.write(b"\0")
    server = start_gunicorn(tmp_path / "gunicorn.log", env={"CHURN_MODEL_PATH": str(tampered)}, wait=False)
    try:
        code = server.process.wait(timeout=60)
    finally:
        if server.process.poll() is None:
            stop(server)
    assert code != 0
    assert "churn service cannot start" in server.output()
    assert "the file changed after training" in server.output()


def test_sigterm_stops_it_cleanly_and_quickly(tmp_path):
    server = start_gunicorn(tmp_path / "gunicorn.log")
    started = time.monotonic()
    assert stop(server) == 0
    assert time.monotonic() - started < 10
    assert "Shutting down: Master" in server.output()


def predict_count(server: Server) -> float:
    """``churn_requests_total`` for answered ``/predict`` requests, as /metrics reports it."""
    for line in requests.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith('churn_requests_total{endpoint="/predict",status="200"}'):
            return float(line.rpartition(" ")[2])
    return 0.0


def test_metrics_add_up_every_workers_requests_exactly(tmp_path):
    server = start_gunicorn(tmp_path / "gunicorn.log", {"WEB_CONCURRENCY": "3"})
    try:
        # New connections each time, so the requests spread over the workers.
        for _ in range(120):
            response = requests.post(f"{server.url}/predict", json=SAMPLE_CUSTOMER, headers={"Connection": "close"})
            assert response.status_code == 200
        pids = {line.split("pid: ")[1].rstrip(")") for line in server.output().splitlines() if "Booting worker" in line}
        assert len(pids) == 3
        # Each worker adds its counts to the files within FLUSH_INTERVAL_S; then they must stay exact.
        deadline = time.monotonic() + 10 * FLUSH_INTERVAL_S
        while predict_count(server) < 120 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2 * FLUSH_INTERVAL_S)
        assert predict_count(server) == 120
    finally:
        stop(server)


def test_recycled_workers_keep_their_counts_and_leave_no_files(tmp_path):
    metrics_dir = tmp_path / "metrics"
    server = start_gunicorn(
        tmp_path / "gunicorn.log", {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    )
    try:
        # SIGHUP replaces both workers: fifty times is a hundred workers gone, each having answered requests.
        for round_ in range(50):
            booted = server.output().count("Booting worker")
            for _ in range(2):
                response = requests.post(f"{server.url}/predict", json=SAMPLE_CUSTOMER, headers={"Connection": "close"})
                assert response.status_code == 200
            server.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while server.output().count("Booting worker") < booted + 2:
                assert time.monotonic() < deadline, f"round {round_}: no new workers\n{server.output()}"
                time.sleep(0.05)
        assert predict_count(server) == 100
        # The archive's, the master's and the live workers' files: bounded whatever the number of restarts.
        deadline = time.monotonic() + 30
        while len(list(metrics_dir.glob("*.db"))) > 12:
            assert time.monotonic() < deadline, sorted(file.name for file in metrics_dir.glob("*.db"))
            time.sleep(0.2)
        assert predict_count(server) == 100
    finally:
        stop(server)

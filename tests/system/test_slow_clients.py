"""Slow clients against a real ``gunicorn predict:app``: normal requests answered, slow connections cut, nothing sent.

Timing bounds here are generous on purpose (the goals are in docs/slow-clients.md, measured by
benchmarks/slow_clients.py): they only tell a server that keeps answering from one that stalls.
"""

import asyncio
import json
import socket
import time

import requests

from benchmarks.slow_clients import Load, attack
from churn.examples import SAMPLE_CUSTOMER
from churn.workers import REQUEST_READ_TIMEOUT_S
from tests.helpers.gunicorn import start_gunicorn, stop


def test_slow_clients_are_closed_unanswered_while_normal_requests_are_answered(tmp_path):
    server = start_gunicorn(tmp_path / "gunicorn.log")
    port = int(server.url.rsplit(":", 1)[1])
    # 60 connections trickling a head or a body a byte every 2 s, held past the read timeout.
    load = Load(slow=60, interval=2.0, hold=REQUEST_READ_TIMEOUT_S + 8, rate=5.0, timeout=5.0)
    try:
        run = asyncio.run(attack(port, load, "test"))
    finally:
        stop(server)
    assert run.failures == {}
    assert run.sent > 50
    for slow in run.slow:
        assert slow.closed_after_s is not None, f"a slow {slow.mode} connection was still open"
        # Not before the read timeout: what closed it is the timeout, not some other limit.
        assert slow.closed_after_s >= REQUEST_READ_TIMEOUT_S - 1
        assert slow.received == 0
    assert "Closed a connection: its request was not in within" in server.output()


def test_prediction_log_waiting_on_its_database_does_not_hold_up_requests(tmp_path):
    # A PostgreSQL that accepts connections and never answers: each connection attempt of the prediction
    # log's writer waits its full connect timeout (5 s) in libpq, which would stall every request of the
    # worker if the writer were a greenlet on the worker's event loop instead of an OS thread.
    with socket.create_server(("127.0.0.1", 0), backlog=100) as silent:
        url = f"postgresql://churn@127.0.0.1:{silent.getsockname()[1]}/churn"
        server = start_gunicorn(tmp_path / "gunicorn.log", env={"CHURN_PREDICTION_LOG": url})
        try:
            body = json.dumps(SAMPLE_CUSTOMER).encode()
            headers = {"Content-Type": "application/json"}
            deadline = time.monotonic() + 8
            answered = 0
            while time.monotonic() < deadline:
                # 2.5 s: half the stall a blocked event loop would cause, 25 times the p99 goal.
                response = requests.post(f"{server.url}/predict", data=body, headers=headers, timeout=2.5)
                assert response.status_code == 200
                answered += 1
        finally:
            stop(server)
    assert answered > 20

"""nginx as Elastic Beanstalk runs it on the instance, with the project's .platform files, in front of gunicorn."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator

import pytest

from churn.examples import SAMPLE_CUSTOMER
from churn.settings import Settings
from tests.helpers.gunicorn import Server, free_port, start_gunicorn, stop
from tests.helpers.nginx import PLATFORM_CONF, Nginx, start_nginx, stop_nginx

LIMIT = Settings().max_request_bytes
# Each request's client port as gunicorn sees it: nginx's end of the upstream connection.
ACCESS_FORMAT = "upstream-port=%({remote_port}e)s %(m)s %(U)s %(s)s"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    server = start_gunicorn(log, env={"GUNICORN_CMD_ARGS": f"--access-logformat '{ACCESS_FORMAT}'"})
    yield server
    stop(server)


@pytest.fixture(scope="module")
def nginx(service: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    upstream_port = int(service.url.rsplit(":", 1)[1])
    proxy = start_nginx(tmp_path_factory.mktemp("nginx"), free_port(), upstream_port)
    yield proxy
    stop_nginx(proxy)


def post(nginx: Nginx, path: str, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def padded_batch(size: int, customers: int = 500) -> bytes:
    """A batch of customers whose records carry a free-text note (a field the service ignores), ``size`` bytes."""
    note = "n" * ((size - len(json.dumps([{**SAMPLE_CUSTOMER, "note": ""}] * customers))) // customers)
    body = json.dumps([{**SAMPLE_CUSTOMER, "note": note}] * customers).encode()
    return body + b" " * (size - len(body))


def test_a_large_batch_is_scored_through_nginx(nginx: Nginx):
    body = padded_batch(3 * LIMIT // 4)
    assert len(body) == 786_432
    response, content = post(nginx, "/predict", body)
    assert response.status == 200, content[:500]
    answers = json.loads(content)
    assert len(answers) == 500
    assert answers[0]["customerid"] == SAMPLE_CUSTOMER["customerid"]
    assert answers[0]["churn_probability"] == pytest.approx(0.0676, abs=1e-4)


def problem(response: http.client.HTTPResponse, content: bytes) -> dict[str, object]:
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/problem+json", content[:200]
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    return json.loads(content)


def services_answer(service: Server, size: int) -> dict[str, object]:
    """What the service itself answers a body that declares ``size`` bytes: it decides from the header alone."""
    connection = http.client.HTTPConnection("127.0.0.1", int(service.url.rsplit(":", 1)[1]), timeout=10)
    try:
        connection.putrequest("POST", "/predict")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        response = connection.getresponse()
        return problem(response, response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 100_000, 4 * 1024 * 1024])
def test_a_body_over_the_limit_gets_the_services_problem_json(nginx: Nginx, service: Server, size: int):
    response, content = post(nginx, "/predict", padded_batch(size))
    assert b"<html>" not in content
    assert problem(response, content) == services_answer(service, size)


def test_a_chunked_body_over_the_limit_gets_the_services_problem_json(nginx: Nginx, service: Server):
    body = padded_batch(LIMIT + 100_000)
    chunks = (body[start : start + 65536] for start in range(0, len(body), 65536))
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)
    try:
        connection.request("POST", "/predict", chunks, {"Content-Type": "application/json"}, encode_chunked=True)
        response = connection.getresponse()
        document = problem(response, response.read())
    finally:
        connection.close()
    # The service's words for a body of unknown length.
    expected = services_answer(service, len(body))
    expected["detail"] = expected["detail"].replace(str(len(body)), "more")
    assert document == expected


def test_a_body_at_the_limit_passes_nginx(nginx: Nginx):
    response, content = post(nginx, "/predict", padded_batch(LIMIT))
    assert response.status == 200, content[:500]


def test_nginx_limit_is_the_services():
    text = (PLATFORM_CONF / "churn-proxy.conf").read_text()
    megabytes = int(re.search(r"^client_max_body_size (\d+)m;$", text, re.MULTILINE).group(1))
    assert megabytes * 1024 * 1024 == LIMIT
    assert f"the limit is {LIMIT}." in (PLATFORM_CONF / "elasticbeanstalk" / "churn-errors.conf").read_text()


def test_keep_alive_holds_on_both_sides(nginx: Nginx, service: Server):
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    body = json.dumps(SAMPLE_CUSTOMER).encode()
    client_ports = set()
    try:
        for _ in range(5):
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["churn"] is False
            assert not response.will_close
            # http.client reconnects silently when a connection was closed: the same local port says it was not.
            client_ports.add(connection.sock.getsockname()[1])
    finally:
        connection.close()
    assert len(client_ports) == 1
    # nginx reused its connection to gunicorn too (the upstream's keepalive and HTTP/1.1).
    upstream_ports = re.findall(r"upstream-port=(\d+) POST /predict 200", service.output())
    assert len(upstream_ports) >= 5
    assert len(set(upstream_ports[-5:])) == 1, upstream_ports

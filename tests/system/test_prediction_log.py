"""The prediction log against real servers: PostgreSQL, MariaDB and Redis, and SQLite shared by processes.

One server of each kind serves the whole module; each test writes to a database or stream of its own.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, distinct, func, inspect, select

from churn.examples import SAMPLE_CUSTOMER
from churn.log_sinks import PREDICTIONS, ROW_COLUMNS, SCHEMA_VERSIONS, database_url, sink_factory
from churn.prediction_log import PredictionLog
from tests.helpers.databases import (
    CountingObserver,
    MariaDB,
    Postgres,
    Redis,
    features_of,
    prediction_records,
    running,
    version_1_tables,
)
from tests.helpers.gunicorn import start_gunicorn, stop

THREADS = 8
RECORDS = 10_000
OUTAGE_S = 10
# After the restart the writer's next retry comes within this: the test need not wait for the default cap.
RETRY_CAP = 1.0
FLUSH_TIMEOUT = 30


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running(Postgres) as server:
        yield server


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDB]:
    with running(MariaDB) as server:
        yield server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Redis]:
    with running(Redis) as server:
        yield server


@dataclass
class Target:
    """A log URL, what counts the records stored there (all, and distinct request ids), and its server."""

    url: str
    counts: Callable[[], tuple[int, int]]
    server: Postgres | MariaDB | Redis | None = None


def sql_counts(url: str) -> Callable[[], tuple[int, int]]:
    def counts() -> tuple[int, int]:
        engine = create_engine(database_url(url))
        try:
            with engine.connect() as connection:
                query = select(func.count(), func.count(distinct(PREDICTIONS.c.request_id)))
                total, unique = connection.execute(query).one()
        finally:
            engine.dispose()
        return total, unique

    return counts


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    name = f"log_{uuid.uuid4().hex[:12]}"
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'predictions.db'}"
        return Target(url, sql_counts(url))
    if kind in ("postgresql", "mariadb"):
        server = request.getfixturevalue("postgres" if kind == "postgresql" else "mariadb")
        url = server.new_database(name)
        return Target(url, sql_counts(url), server)
    server = request.getfixturevalue("redis_server")

    def stream_counts() -> tuple[int, int]:
        entries = server.client().xrange(name)
        return len(entries), len({fields[b"request_id"] for _, fields in entries})

    return Target(f"{server.url}?stream={name}", stream_counts, server)


def send_from_threads(log: PredictionLog, threads: int, records: int) -> None:
    """``records`` records recorded from ``threads`` threads at once, a few per call as requests give them."""
    per_thread = records // threads

    def send(thread: int) -> None:
        batch = prediction_records(per_thread, f"thread{thread}")
        for start in range(0, per_thread, 5):
            log.record(batch[start : start + 5])

    workers = [threading.Thread(target=send, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


@pytest.mark.parametrize("target", ["sqlite", "postgresql", "mariadb", "redis"], indirect=True)
def test_records_from_many_threads_are_each_written_once(target: Target) -> None:
    observer = CountingObserver()
    log = PredictionLog(target.url, observer=observer)
    send_from_threads(log, THREADS, RECORDS)

    assert log.close(FLUSH_TIMEOUT) == 0
    assert target.counts() == (RECORDS, RECORDS)
    assert (observer.written_total, observer.dropped_total) == (RECORDS, 0)


@pytest.mark.parametrize("target", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_tables_of_version_1_are_upgraded_keeping_their_rows(target: Target, caplog: pytest.LogCaptureFixture) -> None:
    old, new = prediction_records(3, "old"), prediction_records(2, "new")
    version_1_tables(target.url, old)
    log = PredictionLog(target.url)
    log.record(new)
    assert log.close(FLUSH_TIMEOUT) == 0

    engine = create_engine(database_url(target.url))
    try:
        with engine.connect() as connection:
            columns = {column["name"] for column in inspect(connection).get_columns(PREDICTIONS.name)}
            versions = connection.scalars(select(SCHEMA_VERSIONS.c.version).order_by(SCHEMA_VERSIONS.c.version)).all()
            read = PREDICTIONS.c.request_id, PREDICTIONS.c.contract, PREDICTIONS.c.tenure
            stored = connection.execute(select(*read).order_by(PREDICTIONS.c.id)).all()
    finally:
        engine.dispose()
    assert columns == {"id", *ROW_COLUMNS}
    assert versions == [1, 2]
    assert caplog.text.count("upgraded its tables from schema version 1 to 2") == 1
    records = [*old, *new]
    assert [tuple(row) for row in stored] == [
        (record.request_id, features_of(record)["contract"], features_of(record)["tenure"]) for record in records
    ]


@pytest.mark.parametrize("target", ["postgresql", "mariadb", "redis"], indirect=True)
def test_a_retried_batch_is_written_once(target: Target) -> None:
    sink = sink_factory(target.url)()
    first = [sink.encode(record) for record in prediction_records(3, "first")]
    second = [sink.encode(record) for record in prediction_records(2, "second")]
    sink.write(first, "batch1", retrying=False)
    # As after a commit whose answer was lost: the writer tries the same batch again.
    sink.write(first, "batch1", retrying=True)
    sink.write(second, "batch2", retrying=True)
    sink.close()

    assert target.counts() == (5, 5)


class Producer(threading.Thread):
    """Records ten records every few milliseconds, as a steady stream of requests would, until stopped."""

    def __init__(self, log: PredictionLog) -> None:
        super().__init__()
        self.log = log
        self.sent = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.005):
            self.log.record(prediction_records(10, f"p{self.sent}"))
            self.sent += 10


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("target", ["postgresql", "mariadb", "redis"], indirect=True)
def test_an_outage_loses_and_repeats_nothing(target: Target) -> None:
    assert target.server is not None
    observer = CountingObserver()
    log = PredictionLog(target.url, observer=observer, retry_cap=RETRY_CAP)
    producer = Producer(log)
    producer.start()
    try:
        wait_for(lambda: observer.written_total >= 500, "records written before the outage", 10)
        assert log.ready()

        target.server.stop()
        stopped = time.monotonic()
        wait_for(lambda: not log.ready(), "ready() False with the server down", OUTAGE_S)
        sent_when_down, written_when_down = producer.sent, observer.written_total
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        # The producer went on recording while nothing could be written: record() did not wait for the sink.
        assert producer.sent > sent_when_down
        assert observer.written_total == written_when_down
        target.server.start()

        wait_for(log.ready, "ready() True after the restart", OUTAGE_S)
    finally:
        producer.stopping.set()
        producer.join()

    assert log.close(FLUSH_TIMEOUT) == 0
    assert target.counts() == (producer.sent, producer.sent)
    assert (observer.written_total, observer.dropped_total) == (producer.sent, 0)


def test_forked_workers_write_one_sqlite_file(tmp_path: Path) -> None:
    """As gunicorn with --preload: the log is opened before the fork, and each worker writes on its own."""
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    log = PredictionLog(url)
    # Queued in the parent when it forks: the parent's to write, not the workers'.
    log.record(prediction_records(100, "parent"))
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=work, args=(log, f"worker{number}")) for number in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(FLUSH_TIMEOUT)

    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert log.close(FLUSH_TIMEOUT) == 0
    assert sql_counts(url)() == (100 + 3 * 2000, 100 + 3 * 2000)


def work(log: PredictionLog, name: str) -> None:
    records = prediction_records(2000, name)
    for start in range(0, len(records), 10):
        log.record(records[start : start + 10])
    sys.exit(log.close(FLUSH_TIMEOUT))


SERVICE_REQUESTS = 2_000
CUSTOMERS_PER_REQUEST = 5


def score_from_threads(url: str, requests_each: int, stop: threading.Event | None = None) -> list[int]:
    """POST batches of the course's customer from ``THREADS`` keep-alive connections; the count each thread got 200 for.

    With ``stop`` the threads go on until it is set (``requests_each`` is then ignored).
    """
    done = [0] * THREADS
    body = [SAMPLE_CUSTOMER] * CUSTOMERS_PER_REQUEST

    def send(thread: int) -> None:
        with requests.Session() as session:
            sent = 0
            while (stop is None and sent < requests_each) or (stop is not None and not stop.is_set()):
                response = session.post(f"{url}/predict", json=body, timeout=30)
                assert response.status_code == 200, response.text
                sent += 1
                done[thread] = sent

    workers = [threading.Thread(target=send, args=(thread,)) for thread in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done


@pytest.mark.parametrize("target", ["sqlite", "postgresql", "mariadb", "redis"], indirect=True)
def test_the_service_logs_every_prediction_once_through_a_sigterm(target: Target, tmp_path: Path) -> None:
    server = start_gunicorn(tmp_path / "gunicorn.log", {"CHURN_PREDICTION_LOG": target.url})
    try:
        sent = score_from_threads(server.url, SERVICE_REQUESTS // THREADS)
    finally:
        # Right after the last answer: what the workers still hold must be written before they exit.
        code = stop(server)
    assert code == 0, server.output()
    assert sum(sent) == SERVICE_REQUESTS
    assert target.counts() == (SERVICE_REQUESTS * CUSTOMERS_PER_REQUEST, SERVICE_REQUESTS)


def held_records(url: str) -> float:
    """What the workers' prediction logs hold, unwritten, as /metrics reports it."""
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("churn_prediction_log_queue "):
            return float(line.rpartition(" ")[2])
    raise AssertionError("churn_prediction_log_queue is not in /metrics")


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_the_service_answers_through_a_database_outage_and_logs_every_prediction(
    target: Target, tmp_path: Path
) -> None:
    assert target.server is not None
    server = start_gunicorn(tmp_path / "gunicorn.log", {"CHURN_PREDICTION_LOG": target.url})
    stopping = threading.Event()
    sent: list[int] = []
    client = threading.Thread(target=lambda: sent.extend(score_from_threads(server.url, 0, stopping)))
    try:
        client.start()
        time.sleep(1)
        target.server.stop()
        wait_for(lambda: requests.get(f"{server.url}/ready", timeout=10).status_code == 503, "/ready 503", OUTAGE_S)
        time.sleep(OUTAGE_S)
        target.server.start()
        wait_for(lambda: requests.get(f"{server.url}/ready", timeout=10).status_code == 200, "/ready 200", 30)
        time.sleep(1)
        stopping.set()
        client.join()
        wait_for(lambda: held_records(server.url) == 0, "the writers caught up", 60)
    finally:
        stopping.set()
        client.join()
        code = stop(server)
    assert code == 0, server.output()
    assert sum(sent) > 0
    # Every answered request's customers, once each, though the database was gone for 10 s of the run.
    log = "\n".join(line for line in server.output().splitlines() if "POST /predict" not in line)
    assert target.counts() == (sum(sent) * CUSTOMERS_PER_REQUEST, sum(sent)), log[-3000:]

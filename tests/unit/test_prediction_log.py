"""The prediction log's queue, writer thread and URLs, with SQLite files and standard output as sinks."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import FrameType

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from churn import schema
from churn.log_sinks import METADATA, PREDICTIONS, SCHEMA_VERSION, SCHEMA_VERSIONS, database_url, sink_factory
from churn.prediction_log import PredictionLog, PredictionLogError, PredictionRecord, open_prediction_log
from tests.helpers.databases import CountingObserver, features_of, prediction_records

# The unit tests' sinks come back at once: retries need not wait long.
RETRY_CAP = 0.1


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def rows(path: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute("SELECT * FROM churn_predictions ORDER BY id").fetchall()


@pytest.fixture
def observer() -> CountingObserver:
    return CountingObserver()


@pytest.fixture
def closing() -> Iterator[list[PredictionLog]]:
    """Logs a test opens, closed at its end even when it fails, so no writer thread outlives it."""
    logs: list[PredictionLog] = []
    yield logs
    for log in logs:
        log.close(1)


def test_each_record_is_a_row_with_the_features_as_columns(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    records = prediction_records(3, "request")
    log = open_prediction_log(f"sqlite:///{path}", buffer=10)
    log.record(records)
    assert log.close(10) == 0

    stored = rows(path)
    assert [row["request_id"] for row in stored] == ["request-0", "request-1", "request-2"]
    first, second = stored[0], stored[1]
    assert first["customer_id"] is None
    assert second["customer_id"] == "0001-TEST"
    assert {name: second[name] for name in schema.FEATURES} == features_of(records[1])
    assert (second["probability"], second["decision"], second["threshold"]) == (0.01, 0, 0.5)
    assert (second["model_sha256"], second["model_c"], second["latency_ms"]) == ("0" * 64, 1.0, 1.5)
    assert second["endpoint"] == "/predict"
    assert second["logged_at"].startswith(records[1].logged_at.strftime("%Y-%m-%d %H:%M:%S"))
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM churn_prediction_log_schema").fetchall() == [(SCHEMA_VERSION,)]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = connection.execute("PRAGMA index_list(churn_predictions)").fetchall()
        assert any("logged_at" in index[1] for index in indexes)


def test_the_exported_table_reads_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    log = PredictionLog(url)
    log.record(prediction_records(100, "request"))
    assert log.close(10) == 0

    engine = create_engine(url)
    with engine.connect() as connection:
        churn_rate = connection.scalar(select(func.avg(PREDICTIONS.c.decision)))
    engine.dispose()
    assert churn_rate == 0.5


def test_times_are_stored_in_sqlalchemys_text_for_sqlite(tmp_path: Path) -> None:
    # The sink formats times itself, its date and time of day once a second: across seconds, days and
    # zones, the text must be the one SQLAlchemy writes and reads back.
    path = tmp_path / "predictions.db"
    last = datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    times = [
        last - timedelta(microseconds=1),
        last,
        last + timedelta(microseconds=1),
        (last + timedelta(seconds=1, microseconds=1)).astimezone(timezone(timedelta(hours=5, minutes=30))),
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
    ]
    made = prediction_records(len(times), "request")
    records = [record._replace(logged_at=moment) for record, moment in zip(made, times, strict=True)]
    log = open_prediction_log(f"sqlite:///{path}", buffer=10)
    log.record(records)
    assert log.close(10) == 0

    dialect = sqlite_dialect()
    sqlalchemy_text = PREDICTIONS.c.logged_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert [row["logged_at"] for row in rows(path)] == [sqlalchemy_text(moment.astimezone(UTC)) for moment in times]
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        read = connection.scalars(select(PREDICTIONS.c.logged_at).order_by(PREDICTIONS.c.id)).all()
    engine.dispose()
    assert [moment.replace(tzinfo=UTC) for moment in read] == times


def test_a_retried_batch_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    sink = sink_factory(f"sqlite:///{path}")()
    first = [sink.encode(record) for record in prediction_records(3, "first")]
    second = [sink.encode(record) for record in prediction_records(2, "second")]
    sink.write(first, "batch-1", retrying=False)
    # As after a commit whose answer was lost: the writer tries the same batch again.
    sink.write(first, "batch-1", retrying=True)
    sink.write(second, "batch-2", retrying=True)
    sink.close()

    assert [row["request_id"] for row in rows(path)] == ["first-0", "first-1", "first-2", "second-0", "second-1"]


def test_tables_of_a_newer_version_are_not_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "predictions.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        METADATA.create_all(connection)
        connection.execute(SCHEMA_VERSIONS.insert(), {"version": SCHEMA_VERSION + 1, "applied_at": datetime.now(UTC)})
    engine.dispose()
    log = PredictionLog(f"sqlite:///{path}", retry_cap=RETRY_CAP)
    log.record(prediction_records(1, "request"))

    assert log.close(1) == 1
    assert not log.ready()
    assert rows(path) == []
    assert f"schema version {SCHEMA_VERSION + 1}, this service writes version {SCHEMA_VERSION}" in caplog.text


def test_stdout_has_one_json_line_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    records = prediction_records(2, "request")
    log = PredictionLog("stdout")
    log.record(records)
    assert log.close(10) == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["request_id"] for line in lines] == ["request-0", "request-1"]
    assert lines[0]["customer_id"] is None
    assert lines[1] == {
        "request_id": "request-1",
        "logged_at": records[1].logged_at.isoformat(),
        "endpoint": "/predict",
        "customer_id": "0001-TEST",
        "features": features_of(records[1]),
        "probability": 0.01,
        "decision": False,
        "threshold": 0.5,
        "model_sha256": "0" * 64,
        "model_c": 1.0,
        "latency_ms": 1.5,
    }


def test_a_record_that_cannot_be_stored_is_dropped_and_counted(
    tmp_path: Path, observer: CountingObserver, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "predictions.db"
    good, bad = prediction_records(2, "request")
    bad = bad._replace(features=schema.feature_values({**features_of(bad), "tenure": "many"}))  # type: ignore[dict-item]
    log = PredictionLog(f"sqlite:///{path}", observer=observer)
    log.record([good, bad])
    assert log.close(10) == 0

    assert [row["request_id"] for row in rows(path)] == ["request-0"]
    assert (observer.written_total, observer.dropped_total) == (1, 1)
    assert "cannot store record" in caplog.text


def test_a_full_buffer_drops_counts_and_says_so(
    tmp_path: Path, observer: CountingObserver, caplog: pytest.LogCaptureFixture, closing: list[PredictionLog]
) -> None:
    # SQLite cannot open a file in a folder that does not exist: the sink is down until it is made.
    folder = tmp_path / "later"
    log = PredictionLog(f"sqlite:///{folder / 'predictions.db'}", buffer=100, observer=observer, retry_cap=RETRY_CAP)
    closing.append(log)
    for start in range(0, 1000, 10):
        log.record(prediction_records(10, f"request-{start}"))

    assert observer.dropped_total == 900
    assert max(observer.queue_sizes) == 100
    drops = [record for record in caplog.records if "dropped" in record.getMessage()]
    # One line, however many requests dropped records: the rest is rate-limited.
    assert len(drops) == 1
    assert drops[0].levelno == logging.WARNING
    assert "the buffer of 100 records is full" in drops[0].getMessage()

    folder.mkdir()
    assert log.close(10) == 0
    assert observer.written_total == 100
    assert observer.written_total + observer.dropped_total == 1000
    assert len(rows(folder / "predictions.db")) == 100


def test_ready_follows_the_sink(tmp_path: Path, caplog: pytest.LogCaptureFixture, closing: list[PredictionLog]) -> None:
    folder = tmp_path / "later"
    log = PredictionLog(f"sqlite:///{folder / 'predictions.db'}", retry_cap=RETRY_CAP)
    closing.append(log)
    assert not log.ready()

    log.record(prediction_records(1, "request"))
    wait_for(lambda: "cannot write to" in caplog.text, "a failed write")
    assert not log.ready()

    folder.mkdir()
    wait_for(log.ready, "ready() once the file can be written")
    assert "writing to" in caplog.text
    assert log.close(10) == 0


def test_the_tables_are_there_once_ready_before_any_record(tmp_path: Path, closing: list[PredictionLog]) -> None:
    path = tmp_path / "predictions.db"
    log = PredictionLog(f"sqlite:///{path}")
    closing.append(log)
    wait_for(log.ready, "ready() with a new file")
    assert rows(path) == []


def test_record_returns_while_the_writer_is_stuck(
    tmp_path: Path, observer: CountingObserver, closing: list[PredictionLog]
) -> None:
    path = tmp_path / "predictions.db"
    log = PredictionLog(f"sqlite:///{path}", observer=observer, retry_cap=RETRY_CAP)
    closing.append(log)
    log.record(prediction_records(1, "first"))
    wait_for(lambda: observer.written_total == 1, "the first record written")

    # Another process's write transaction: the writer cannot write until it ends.
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for start in range(0, 1000, 10):
            log.record(prediction_records(10, f"request-{start}"))
        called = calls_made_by(log.record, prediction_records(10, "traced"))
        assert observer.written_total == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    # Nothing on record()'s path waits for the sink, nor reports to metrics while nothing is dropped: it only
    # appends under the queue's lock (and wakes the writer when the queue was empty).
    python_modules = {module for kind, module in called if kind == "python"}
    assert python_modules <= {"churn.prediction_log", "threading"}
    native = {module for kind, module in called if kind == "native"}
    assert native <= {"builtins", "posix", "sys", "deque", "list", "lock"}
    assert log.close(10) == 0
    assert len(rows(path)) == 1011
    assert observer.queue_sizes[-1] == 0


def test_the_writer_reports_what_a_down_sink_leaves_queued(
    tmp_path: Path, observer: CountingObserver, closing: list[PredictionLog]
) -> None:
    folder = tmp_path / "later"
    log = PredictionLog(f"sqlite:///{folder / 'predictions.db'}", observer=observer, retry_cap=RETRY_CAP)
    closing.append(log)
    log.record(prediction_records(3, "first"))
    wait_for(lambda: observer.queue_sizes[-1:] == [3], "the queue reported after a failed attempt")
    log.record(prediction_records(2, "second"))
    wait_for(lambda: observer.queue_sizes[-1:] == [5], "the queue reported after the next failed attempt")

    folder.mkdir()
    assert log.close(10) == 0
    assert observer.queue_sizes[-1] == 0
    assert observer.written_total == 5


def calls_made_by(
    action: Callable[[list[PredictionRecord]], None], records: list[PredictionRecord]
) -> set[tuple[str, str]]:
    """The modules (or, for methods of built-in types, the types) of every function ``action(records)`` calls."""
    called: set[tuple[str, str]] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            called.add(("python", frame.f_globals.get("__name__", "?")))
        elif event == "c_call":
            owner = getattr(arg, "__module__", None) or getattr(arg, "__qualname__", "?").split(".")[0]
            called.add(("native", owner))

    sys.setprofile(profile)
    try:
        action(records)
    finally:
        sys.setprofile(None)
    return called


def test_records_after_close_are_dropped(tmp_path: Path, observer: CountingObserver) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'predictions.db'}", observer=observer)
    log.record(prediction_records(1, "before"))
    assert log.close(10) == 0
    log.record(prediction_records(2, "after"))
    assert (observer.written_total, observer.dropped_total) == (1, 2)


def test_records_arriving_one_by_one_are_gathered_into_one_batch(tmp_path: Path, observer: CountingObserver) -> None:
    path = tmp_path / "predictions.db"
    log = PredictionLog(f"sqlite:///{path}", observer=observer, gather=0.5)
    for record in prediction_records(20, "one-by-one"):
        log.record([record])
    wait_for(lambda: observer.written_total == 20, "the records are written")
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT records FROM churn_prediction_batches").fetchall() == [(20,)]
    assert log.close(10) == 0


def test_close_writes_at_once_without_gathering(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    log = PredictionLog(f"sqlite:///{path}", gather=3600)
    log.record(prediction_records(3, "closing"))
    # Within the time close() is given, far below the hour the writer would otherwise gather for.
    assert log.close(10) == 0
    assert len(rows(path)) == 3


def test_close_without_records_has_nothing_to_write(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'predictions.db'}")
    assert log.close(0) == 0
    assert not (tmp_path / "predictions.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/log", "unsupported scheme 'ftp'"),
        ("predictions.db", "is not a URL"),
        ("sqlite://", "names no file"),
        ("sqlite:///:memory:", "names no file"),
        ("postgresql+nosuchdriver://localhost/log", r"needs the driver 'postgresql\+nosuchdriver'"),
        ("redis://localhost:6379/0?maxlen=many", "maxlen must be a positive whole number"),
        ("redis://localhost:port/0", "is not a Redis URL"),
    ],
)
def test_a_bad_url_is_refused_at_start(url: str, message: str) -> None:
    with pytest.raises(PredictionLogError, match=message):
        open_prediction_log(url, buffer=10)


def test_a_password_never_reaches_a_message() -> None:
    with pytest.raises(PredictionLogError) as error:
        open_prediction_log("oracle://scott:tiger@db.example.com/log", buffer=10)
    assert "tiger" not in str(error.value)
    assert "scott:***@db.example.com" in str(error.value)


def test_the_buffer_holds_at_least_one_record() -> None:
    with pytest.raises(PredictionLogError, match="at least 1 record"):
        PredictionLog("stdout", buffer=0)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://user@db/log", "postgresql+psycopg"),
        ("postgres://user@db/log", "postgresql+psycopg"),
        ("mysql://user@db/log", "mysql+pymysql"),
        ("mariadb://user@db/log", "mariadb+pymysql"),
        ("mysql+pymysql://user@db/log", "mysql+pymysql"),
        ("sqlite:///predictions.db", "sqlite+pysqlite"),
    ],
)
def test_urls_get_the_installed_drivers(url: str, driver: str) -> None:
    assert database_url(url).drivername == driver

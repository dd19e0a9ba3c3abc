"""Real PostgreSQL, MariaDB and Redis servers from Debian's packages, each on a free port in a temporary folder.

Each server can be stopped and started again on the same folder and port, as an outage does. A test that
needs a server whose program is missing is skipped, unless the ``CI`` variable is set: CI must run them all.
Also here: the records the prediction log's tests write, and an observer that counts what the log reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest
import redis
from sqlalchemy import Column, MetaData, Text, create_engine
from sqlalchemy.pool import NullPool

import benchmarks.databases
from churn import schema
from churn.log_sinks import METADATA, PREDICTIONS, SCHEMA_VERSIONS, database_url
from churn.prediction_log import PredictionRecord
from tests.helpers.gunicorn import free_port

START_TIMEOUT_S = 60
# Debian keeps the servers out of an ordinary user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def require(program: str, package: str, search: str = SEARCH_PATH) -> str:
    """The path of ``program``; without it, :func:`missing`."""
    path = shutil.which(program, path=search)
    if path is None:
        missing(program, package)
    return path


def missing(program: str, package: str) -> NoReturn:
    """Skip the test (fail it under CI), naming the package that installs ``program``."""
    reason = f"{program} is not installed: apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _as_user(name: str, folder: Path) -> list[str]:
    """The command prefix that runs a server as ``name`` when we are root (servers refuse root), owning ``folder``."""
    if os.geteuid() != 0:
        return []
    account = pwd.getpwnam(name)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)
    return ["runuser", "-u", name, "--"]


def _wait_until(answers: Callable[[], object], what: str, log: Path, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(Exception):
            answers()
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {START_TIMEOUT_S} s:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _run(command: list[str], log: Path) -> None:
    with log.open("ab") as sink:
        result = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False, timeout=START_TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {result.returncode}:\n{_tail(log)}")


class Postgres(benchmarks.databases.Postgres):
    """The benchmark's PostgreSQL cluster, on a free port, without fsync: nothing here must survive a crash."""

    def __init__(self, folder: Path) -> None:
        if benchmarks.databases.postgres_programs() is None:
            missing("pg_ctl", "postgresql")
        super().__init__(folder, free_port(), durable=False)


class MariaDB:
    """A MariaDB server run by ``mariadbd`` as the ``mysql`` user, its root account without a password."""

    def __init__(self, folder: Path) -> None:
        self.mariadbd = require("mariadbd", "mariadb-server")
        install_db = require("mariadb-install-db", "mariadb-server")
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "mariadb.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log.touch()
        self.user = ["--user=mysql"] if _as_user("mysql", folder) else []
        _run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self.user,
            ],
            self.log,
        )

    def start(self) -> None:
        """Start the server (again) on its folder and port, and wait until it takes connections."""
        command = [
            self.mariadbd,
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.folder / 'mariadb.sock'}",
            f"--pid-file={self.folder / 'mariadb.pid'}",
            f"--log-error={self.log}",
            # Durable at a clean stop, which is all the tests ask; faster than a flush per commit.
            "--innodb-flush-log-at-trx-commit=2",
            *self.user,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until(lambda: self._execute("SELECT 1"), "MariaDB", self.log, self.process)

    def stop(self) -> None:
        """Stop the server with SIGTERM, as systemd does, and wait for its shutdown."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT_S)
            self.process = None

    def new_database(self, name: str) -> str:
        """Create database ``name``; its SQLAlchemy URL."""
        self._execute(f"CREATE DATABASE `{name}`")
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{name}"

    def _execute(self, statement: str) -> None:
        engine = create_engine(
            f"mysql+pymysql://root@127.0.0.1:{self.port}/", connect_args={"connect_timeout": 2}, poolclass=NullPool
        )
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(statement)
        finally:
            engine.dispose()


class Redis:
    """A Redis server with an append-only file, so that a stopped server comes back with its data."""

    def __init__(self, folder: Path) -> None:
        self.redis_server = require("redis-server", "redis-server")
        self.folder = folder
        self.log = folder / "redis.log"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (again) on its folder and port, and wait until it answers PING."""
        command = [
            self.redis_server,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "yes",
            "--logfile", str(self.log),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until(lambda: self.client().ping(), "Redis", self.log, self.process)

    def stop(self) -> None:
        """Stop the server with SIGTERM: it writes its append-only file out and exits."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT_S)
            self.process = None

    def client(self) -> redis.Redis:
        """A client of the server, for a test to look at what was written."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)


ServerT = TypeVar("ServerT", Postgres, MariaDB, Redis)


@contextlib.contextmanager
def running(kind: type[ServerT]) -> Iterator[ServerT]:
    """A started server of ``kind`` in a new temporary folder, stopped and removed afterwards."""
    # Not pytest's tmp_path: its parents are private to root, and the servers run as other users.
    folder = Path(tempfile.mkdtemp(prefix=f"churn-{kind.__name__.lower()}-"))
    try:
        server = kind(folder)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class CountingObserver:
    """A :class:`churn.prediction_log.LogObserver` that adds up what it is told, for tests to compare."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.written_total = 0
        self.dropped_total = 0
        self.queue_sizes: list[int] = []

    def written(self, count: int) -> None:
        with self.lock:
            self.written_total += count

    def dropped(self, count: int) -> None:
        with self.lock:
            self.dropped_total += count

    def queued(self, size: int) -> None:
        with self.lock:
            self.queue_sizes.append(size)


def prediction_records(count: int, prefix: str) -> list[PredictionRecord]:
    """``count`` records of valid customers, each with its own request id ``{prefix}-{i}``."""
    contracts = schema.CATEGORICAL["contract"]
    return [
        PredictionRecord(
            request_id=f"{prefix}-{i}",
            logged_at=datetime.now(UTC),
            endpoint="/predict",
            customer_id=f"{i:04d}-TEST" if i % 2 else None,
            features=schema.feature_values(
                {
                    **{name: allowed[0] for name, allowed in schema.CATEGORICAL.items()},
                    "contract": contracts[i % len(contracts)],
                    "tenure": float(i % 72),
                    "monthlycharges": 20.0 + i % 100,
                    "totalcharges": 20.0 * (i % 72),
                }
            ),
            probability=(i % 100) / 100,
            decision=i % 100 >= 50,
            threshold=0.5,
            model_sha256="0" * 64,
            model_c=1.0,
            latency_ms=1.5,
        )
        for i in range(count)
    ]


def features_of(record: PredictionRecord) -> dict[str, object]:
    """``record``'s features by name."""
    return dict(zip(schema.FEATURES, record.features, strict=True))


def version_1_tables(url: str, records: Sequence[PredictionRecord]) -> None:
    """The log's tables at ``url`` as schema version 1 made them, holding ``records``: features also as JSON text."""
    metadata = MetaData()
    for table in METADATA.sorted_tables:
        table.to_metadata(metadata)
    predictions = metadata.tables[PREDICTIONS.name]
    predictions.append_column(Column("features", Text, nullable=False))
    rows = [
        {**record._asdict(), **features_of(record), "features": json.dumps(features_of(record))} for record in records
    ]
    engine = create_engine(database_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
            connection.execute(SCHEMA_VERSIONS.insert(), {"version": 1, "applied_at": datetime.now(UTC)})
            connection.execute(predictions.insert(), rows)
    finally:
        engine.dispose()

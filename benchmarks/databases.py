"""The prediction log's databases for the HTTP comparison: SQLite files, and a PostgreSQL server of the benchmark's own.

PostgreSQL comes from Debian's ``postgresql`` package: a new cluster in a temporary folder, on a free port of
127.0.0.1, run by ``pg_ctl`` as the ``postgres`` user when we are root (it refuses to run as root), removed at
the end. Each server run gets a new, empty database, so no run writes into, or is counted with, another's rows.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import psycopg
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.pool import NullPool

from churn.log_sinks import PREDICTIONS, database_url

LogKind = Literal["sqlite", "postgresql"]
START_TIMEOUT_S = 60


class DatabaseError(Exception):
    """A database the benchmark needs cannot be had; the message says why."""


def postgres_programs() -> tuple[str, str] | None:
    """Debian's ``initdb`` and ``pg_ctl``, newest major version first; ``None`` when PostgreSQL is not installed."""
    # Debian keeps the server's programs out of PATH, one folder per major version.
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name))
    search = os.pathsep.join([*reversed(versions), os.environ.get("PATH", "")])
    initdb, pg_ctl = (shutil.which(program, path=search) for program in ("initdb", "pg_ctl"))
    return None if initdb is None or pg_ctl is None else (initdb, pg_ctl)


class Postgres:
    """A PostgreSQL cluster in ``folder`` on ``port`` of 127.0.0.1, trusting local connections.

    Run by ``pg_ctl`` as the ``postgres`` user when we are root (the server refuses root). ``durable``
    commits are flushed to disk as in production; without, nothing survives a crash, only a clean stop.
    """

    def __init__(self, folder: Path, port: int, *, durable: bool = True) -> None:
        programs = postgres_programs()
        if programs is None:
            raise DatabaseError("PostgreSQL is not installed: `apt-get install postgresql`, or run scripts/benchmark")
        initdb, self.pg_ctl = programs
        self.folder, self.port, self.durable = folder, port, durable
        self.data, self.log = folder / "data", folder / "postgres.log"
        self.log.touch()
        self.running = False
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            # The server writes its log and creates its data folder: both must be the postgres user's.
            account = pwd.getpwnam("postgres")
            for path in (folder, self.log):
                os.chown(path, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        """Start the server (again), returning once it takes connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off"
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self.running = True

    def stop(self) -> None:
        """Stop the server the way an operator does: fast shutdown, open connections cut."""
        if self.running:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False

    def new_database(self, name: str) -> str:
        """Create database ``name``; its URL as a user writes it (no driver)."""
        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=5"
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, *command: str) -> None:
        # The server's own log is written by pg_ctl's -l; the programs' output joins it, for error messages.
        with self.log.open("ab") as sink:
            status = subprocess.run(
                [*self.as_user, *command], stdout=sink, stderr=subprocess.STDOUT, timeout=START_TIMEOUT_S, check=False
            ).returncode
        if status != 0:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise DatabaseError(f"{Path(command[0]).name} exited with {status}:\n{tail}")


class LogDatabases:
    """A new, empty database per server run, of the kind the server's prediction log writes to."""

    def __init__(self, folder: Path, postgres: Postgres) -> None:
        self.folder = folder
        self.postgres = postgres

    def new(self, kind: LogKind, name: str) -> str:
        """The URL of a new database ``name`` of ``kind``, for ``CHURN_PREDICTION_LOG``."""
        if kind == "sqlite":
            return f"sqlite:///{self.folder / f'{name}.db'}"
        return self.postgres.new_database(name)


@contextmanager
def log_databases(folder: Path, port: int) -> Iterator[LogDatabases]:
    """SQLite files in ``folder`` and a PostgreSQL server on ``port``, stopped and removed on the way out."""
    # Not under ``folder``: its parents may be private to root, and the server runs as postgres.
    postgres_folder = Path(tempfile.mkdtemp(prefix="benchmark-postgres-"))
    try:
        postgres = Postgres(postgres_folder, port)
        postgres.start()
        try:
            yield LogDatabases(folder, postgres)
        finally:
            postgres.stop()
    finally:
        shutil.rmtree(postgres_folder, ignore_errors=True)


def logged_rows(url: str) -> int:
    """How many predictions the log at ``url`` holds; 0 when it never wrote its table."""
    engine = create_engine(database_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(PREDICTIONS.name):
                return 0
            return connection.scalar(select(func.count()).select_from(PREDICTIONS)) or 0
    finally:
        engine.dispose()

"""Where the prediction log writes: SQL databases, a Redis stream or standard output.

A sink turns each record into what it stores (:meth:`Sink.encode`), then writes a batch of them
at once (:meth:`Sink.write`): all of the batch or none of it, and never twice. Each batch has an
id that is stored with it in the same transaction, so that a retry after an error whose outcome
is unknown (the connection dropped after the commit was sent) can see that the batch is in.

Sinks are built per process by the factory :func:`sink_factory` returns: a connection pool or a
client must not cross a ``fork``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from churn import json_replies, schema
from churn.settings import Settings, SettingsError, env_name

if TYPE_CHECKING:
    from churn.prediction_log import PredictionRecord

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
# A stalled server must not hold the writer for long: it retries instead, and close() has 10 s.
CONNECT_TIMEOUT_S = 5
# Rows per INSERT into SQLite: 29 values each, within the 999 variables older SQLite versions allow.
SQLITE_CHUNK_ROWS = 32
# What SQLite waits for another process's write lock: gunicorn workers share one file.
SQLITE_BUSY_TIMEOUT_S = 5
REDIS_STREAM = "churn_predictions"
REDIS_MAXLEN = 1_000_000
# Long enough for any retry to find the marker of a batch whose EXEC answer was lost.
REDIS_BATCH_MARKER_TTL_S = 24 * 3600


class PredictionLogError(ValueError):
    """The prediction log cannot be opened as configured; the message says why."""


# Microseconds: MySQL's DATETIME keeps whole seconds unless asked.
_TIMESTAMP = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_FLAGS = frozenset(name for name, allowed in schema.CATEGORICAL.items() if isinstance(allowed[0], int))
_FEATURE_TYPES = {
    **{name: SmallInteger if name in _FLAGS else String(32) for name in schema.CATEGORICAL},
    **{name: Double for name in schema.NUMERICAL},
}
# The type of each feature's value as the schema cleans it, in schema order; also its column's cast.
_CLEANED_TYPES: tuple[type[int | str | float], ...] = tuple(
    (int if name in _FLAGS else str) if name in schema.CATEGORICAL else float for name in schema.FEATURES
)

METADATA = MetaData()
# The longest customer id the log and the outcomes keep.
MAX_CUSTOMER_ID = 255
PREDICTIONS = Table(
    "churn_predictions",
    METADATA,
    # SQLite only auto-increments an INTEGER primary key.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("logged_at", _TIMESTAMP, nullable=False, index=True),
    Column("endpoint", String(64), nullable=False),
    Column("customer_id", String(MAX_CUSTOMER_ID)),
    # One column per feature, for GROUP BY.
    *(Column(name, column_type) for name, column_type in _FEATURE_TYPES.items()),
    Column("probability", Double, nullable=False),
    Column("decision", Boolean, nullable=False),
    Column("threshold", Double, nullable=False),
    Column("model_sha256", String(64), nullable=False),
    Column("model_c", Double, nullable=False),
    Column("latency_ms", Double, nullable=False),
)
# What SqlSink.encode gives for each record, in this order: every column but the generated id.
ROW_COLUMNS = tuple(column.name for column in PREDICTIONS.columns if not column.primary_key)
# What really happened to customers (POST /feedback), joined with predictions by monitoring.
OUTCOMES = Table(
    "churn_outcomes",
    METADATA,
    # A digest of the subject, so that a subject has one row whatever its ids' lengths.
    Column("subject", String(64), primary_key=True),
    Column("customer_id", String(MAX_CUSTOMER_ID)),
    Column("request_id", String(64)),
    Column("churned", Boolean, nullable=False),
    Column("observed_at", _TIMESTAMP, nullable=False),
    Column("recorded_at", _TIMESTAMP, nullable=False),
    Index("ix_churn_outcomes_request", "request_id", "customer_id"),
    Index("ix_churn_outcomes_customer", "customer_id"),
)
BATCHES = Table(
    "churn_prediction_batches",
    METADATA,
    Column("batch_id", String(32), primary_key=True),
    Column("written_at", _TIMESTAMP, nullable=False),
    Column("records", Integer, nullable=False),
)
SCHEMA_VERSIONS = Table(
    "churn_prediction_log_schema",
    METADATA,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", _TIMESTAMP, nullable=False),
)

Item = TypeVar("Item")


class Sink(Protocol[Item]):
    """One destination of the log, owned by the writer thread of one process."""

    def encode(self, record: PredictionRecord) -> Item:
        """What the sink stores for ``record``; raises if the record cannot be stored."""

    def write(self, items: list[Item], batch_id: str, retrying: bool) -> None:
        """Store all ``items`` or none; when ``retrying``, first check whether batch ``batch_id`` is stored."""

    def probe(self) -> bool:
        """Whether the destination answers now."""

    def close(self) -> None:
        """Release connections."""


def record_document(record: PredictionRecord) -> dict[str, object]:
    """``record`` as plain JSON data: the stdout line and the Redis entry's fields."""
    return {
        "request_id": str(record.request_id),
        "logged_at": _utc(record.logged_at).isoformat(),
        "endpoint": str(record.endpoint),
        "customer_id": None if record.customer_id is None else str(record.customer_id),
        "features": dict(zip(schema.FEATURES, record.features, strict=True)),
        "probability": float(record.probability),
        "decision": bool(record.decision),
        "threshold": float(record.threshold),
        "model_sha256": str(record.model_sha256),
        "model_c": float(record.model_c),
        "latency_ms": float(record.latency_ms),
    }


class SqlSink:
    """Rows in ``churn_predictions``, one transaction per batch.

    Rows go to the driver as plain tuples (executemany; ``COPY`` for PostgreSQL): SQLAlchemy's per-row
    parameter processing cost more CPU than encoding the rows and the driver's own work together.
    """

    def __init__(self, url: URL) -> None:
        self._engine = _engine(url)
        self._schema_ready = False
        backend = url.get_backend_name()
        # SQLite keeps timestamps as the text SQLAlchemy's DateTime writes and reads back.
        self._timestamp: Callable[[datetime], object] = _SqliteTimestamps() if backend == "sqlite" else _utc
        columns = _columns(self._engine.dialect)
        self._insert_rows: Callable[[Connection, list[tuple[object, ...]]], None]
        marker = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
        values = f"({', '.join([marker] * len(ROW_COLUMNS))})"
        if backend == "postgresql":
            copy = f"COPY {columns} FROM STDIN (FORMAT BINARY)"
            self._insert_rows = partial(_copy_rows, copy, _type_names(self._engine.dialect))
        elif backend == "sqlite":
            self._insert_rows = partial(_insert_chunks, f"INSERT INTO {columns} VALUES ", values)
        else:
            self._insert_rows = partial(_execute_many, f"INSERT INTO {columns} VALUES {values}")

    def encode(self, record: PredictionRecord) -> tuple[object, ...]:
        """The row of ``record``, its values in the order of :data:`ROW_COLUMNS`."""
        values = record.features
        features = values if tuple(map(type, values)) == _CLEANED_TYPES else _cast(values)
        return (
            str(record.request_id),
            self._timestamp(record.logged_at),
            str(record.endpoint),
            None if record.customer_id is None else str(record.customer_id),
            *features,
            float(record.probability),
            bool(record.decision),
            float(record.threshold),
            str(record.model_sha256),
            float(record.model_c),
            float(record.latency_ms),
        )

    def write(self, items: list[tuple[object, ...]], batch_id: str, retrying: bool) -> None:
        """Insert the rows and the batch's id in one transaction, unless the id is already there."""
        self._ensure_schema()
        with self._engine.begin() as connection:
            if retrying and connection.scalar(select(BATCHES.c.batch_id).where(BATCHES.c.batch_id == batch_id)):
                return
            connection.execute(BATCHES.insert(), {"batch_id": batch_id, "written_at": _now(), "records": len(items)})
            self._insert_rows(connection, items)

    def probe(self) -> bool:
        """Whether the tables are there (created when missing) and a connection can run ``SELECT 1``."""
        try:
            # At the writer's start rather than its first write: the tables can be queried, and tables
            # of another schema version are found, as soon as the service is up.
            self._ensure_schema()
            with self._engine.connect() as connection:
                connection.execute(select(1))
        except Exception:
            return False
        return True

    def close(self) -> None:
        """Close the pool's connections."""
        self._engine.dispose()

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._engine.begin() as connection:
            METADATA.create_all(connection)
            version = connection.scalar(select(func.max(SCHEMA_VERSIONS.c.version)))
            if version is None:
                connection.execute(SCHEMA_VERSIONS.insert(), {"version": SCHEMA_VERSION, "applied_at": _now()})
                version = SCHEMA_VERSION
            found = version
            while version in _UPGRADES:
                _UPGRADES[version](connection)
                version += 1
                connection.execute(SCHEMA_VERSIONS.insert(), {"version": version, "applied_at": _now()})
            if version != SCHEMA_VERSION:
                raise PredictionLogError(
                    f"the prediction log tables have schema version {version}, this service writes version "
                    f"{SCHEMA_VERSION} and upgrades only older ones: run the release that wrote them, or log to "
                    "another database"
                )
        if found != version:
            # A warning, as the service's own logging shows only those: a change to the operator's database.
            logger.warning("Prediction log: upgraded its tables from schema version %d to %d", found, version)
        self._schema_ready = True


def _drop_features_json(connection: Connection) -> None:
    # Version 1 also kept each record's features as a JSON text, the values of their own columns again:
    # about half of each row. Looked up first, as MariaDB commits DDL at once: a start cut short after
    # the drop finds the column gone and the version still 1.
    if "features" in {column["name"] for column in inspect(connection).get_columns(PREDICTIONS.name)}:
        quote = connection.dialect.identifier_preparer.quote
        connection.exec_driver_sql(f"ALTER TABLE {quote(PREDICTIONS.name)} DROP COLUMN {quote('features')}")


# What brings tables of each older schema version to the next one, in the writer's first transaction.
_UPGRADES: dict[int, Callable[[Connection], None]] = {1: _drop_features_json}


def _cast(values: schema.FeatureValues) -> tuple[object, ...]:
    """Feature values not all of their cleaned types, cast to them; raises for one no column takes.

    A record that cannot be stored is dropped alone by the writer, rather than failing its batch in the
    database again and again.
    """
    return tuple(None if value is None else cast(value) for value, cast in zip(values, _CLEANED_TYPES, strict=True))


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    # Records are made in UTC: converting what is already costs the writer 0.4 µs a record.
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


class _SqliteTimestamps:
    """Times as SQLAlchemy writes them for SQLite, ``YYYY-MM-DD HH:MM:SS.ffffff``, in UTC without an offset.

    The date and time of day are formatted once a second, as a batch's records share their seconds:
    formatting each whole time cost the writer 1.1 µs a record, half of encoding it; this 0.6.
    """

    def __init__(self) -> None:
        self._second: tuple[int, ...] = ()
        self._prefix = ""

    def __call__(self, moment: datetime) -> str:
        moment = _utc(moment)
        second = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year)
        if second != self._second:
            # The offset cut, as SQLAlchemy does; strftime would not pad years before 1000.
            self._second, self._prefix = second, moment.isoformat(" ", "seconds")[:-6] + "."
        return f"{self._prefix}{moment.microsecond:06d}"


def _columns(dialect: Dialect) -> str:
    """The table and :data:`ROW_COLUMNS` as ``dialect`` quotes them: ``churn_predictions (request_id, ...)``."""
    quote = dialect.identifier_preparer.quote
    return f"{quote(PREDICTIONS.name)} ({', '.join(quote(name) for name in ROW_COLUMNS)})"


def _execute_many(statement: str, connection: Connection, rows: list[tuple[object, ...]]) -> None:
    connection.exec_driver_sql(statement, rows)


def _insert_chunks(head: str, values: str, connection: Connection, rows: list[tuple[object, ...]]) -> None:
    # sqlite3 lets other threads run during each step of a statement, and executemany steps once a row:
    # the writer and the requests' thread would trade the GIL twice a row, which cost the requests more
    # than the writing. One statement per chunk of rows instead; each chunk size's statement is cached.
    cursor = connection.connection.cursor()
    try:
        for start in range(0, len(rows), SQLITE_CHUNK_ROWS):
            chunk = rows[start : start + SQLITE_CHUNK_ROWS]
            cursor.execute(head + ", ".join([values] * len(chunk)), list(chain.from_iterable(chunk)))
    finally:
        cursor.close()


def _type_names(dialect: Dialect) -> list[str]:
    """The database types of :data:`ROW_COLUMNS` as ``dialect`` names them, without lengths: ``varchar``, ..."""
    columns = PREDICTIONS.columns
    return [columns[name].type.compile(dialect=dialect).split("(")[0].lower() for name in ROW_COLUMNS]


def _copy_rows(statement: str, types: list[str], connection: Connection, rows: list[tuple[object, ...]]) -> None:
    # COPY is PostgreSQL's cheapest way in, for the server as for the client; it runs in the transaction.
    # Binary rows, whose types the driver must be told, cost the writer some 2 µs each against 5 for text ones.
    cursor = connection.connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


def _engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        # The driver's own transaction handling would begin lazily; the writer begins its own (below).
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "isolation_level": None})
        event.listen(engine, "connect", _use_wal)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    if backend == "postgresql":
        connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_S}
    else:
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": 30, "write_timeout": 30}
    # A restarted server leaves dead connections in the pool: test each before use.
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _begin_immediate(connection: Any) -> None:
    # Take the write lock first, waiting the busy timeout for it: a deferred transaction that reads,
    # then writes, fails at once when another process wrote in between.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _use_wal(connection: Any, _record: object) -> None:
    # WAL lets readers (monitoring) and one writer at a time from any process share the file.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


class RedisSink:
    """Entries of a Redis stream, capped with ``XADD MAXLEN ~``, one ``MULTI``/``EXEC`` per batch."""

    def __init__(self, url: str, stream: str, maxlen: int) -> None:
        # redis-py would resend a whole MULTI/EXEC after a lost answer: the writer retries itself.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=CONNECT_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._stream = stream
        self._maxlen = maxlen

    def encode(self, record: PredictionRecord) -> dict[str, str]:
        """The entry's fields: text as it is, other values as JSON, no field for a missing customer id."""
        return {
            name: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            for name, value in record_document(record).items()
            if value is not None
        }

    def write(self, items: list[dict[str, str]], batch_id: str, retrying: bool) -> None:
        """Add the entries and a marker key for the batch in one transaction, unless the marker exists."""
        marker = f"{self._stream}:batch:{batch_id}"
        if retrying and self._client.exists(marker):
            return
        with self._client.pipeline(transaction=True) as pipeline:
            pipeline.set(marker, len(items), ex=REDIS_BATCH_MARKER_TTL_S)
            for fields in items:
                pipeline.xadd(self._stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
            pipeline.execute()

    def probe(self) -> bool:
        """Whether the server answers ``PING``."""
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


class StdoutSink:
    """One JSON line per record on standard output, for a log collector to pick up."""

    def encode(self, record: PredictionRecord) -> str:
        """The record's line."""
        return json_replies.encode(record_document(record)).decode()

    def write(self, items: list[str], batch_id: str, retrying: bool) -> None:
        """Write the lines in one call, so that other output does not cut into them."""
        sys.stdout.write("".join(items))
        sys.stdout.flush()

    def probe(self) -> bool:
        """Standard output is always there."""
        return True

    def close(self) -> None:
        """Nothing to release: standard output is not ours to close."""


def sink_factory(url: str) -> Callable[[], Sink[Any]]:
    """What builds the sink ``url`` names, checked now: :class:`PredictionLogError` says what is wrong."""
    if url.strip() == "stdout":
        return StdoutSink
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        redis_url, stream, maxlen = _redis_options(url)
        return lambda: RedisSink(redis_url, stream, maxlen)
    sql_url = database_url(url)
    return lambda: SqlSink(sql_url)


SQL_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
SUPPORTED = "sqlite:///FILE, postgresql://..., mysql+pymysql://..., redis://... or stdout"


def database_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``, with psycopg (3) for PostgreSQL and PyMySQL for MySQL and MariaDB."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise PredictionLogError(f"prediction log URL {url!r} is not a URL; use {SUPPORTED}") from None
    backend = "postgresql" if parsed.get_backend_name() == "postgres" else parsed.get_backend_name()
    if backend not in SQL_DRIVERS:
        raise PredictionLogError(
            f"prediction log URL {mask_password(url)!r} has the unsupported scheme {parsed.drivername!r}; "
            f"use {SUPPORTED}"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise PredictionLogError(
            f"prediction log URL {mask_password(url)!r} names no file: an in-memory database is lost with its process; "
            "use sqlite:///path/to/predictions.db"
        )
    driver = parsed.get_driver_name() if "+" in parsed.drivername else SQL_DRIVERS[backend]
    parsed = parsed.set(drivername=f"{backend}+{driver}")
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as error:
        raise PredictionLogError(
            f"prediction log URL {mask_password(url)!r} needs the driver {parsed.drivername!r}, "
            f"which cannot be loaded ({error})"
        ) from None
    return parsed


def _redis_options(url: str) -> tuple[str, str, int]:
    # The stream's name and cap ride in the query; redis-py would reject them as connection options.
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    stream = query.pop("stream", REDIS_STREAM)
    try:
        maxlen = int(query.pop("maxlen", REDIS_MAXLEN))
        if maxlen < 1:
            raise ValueError
    except ValueError:
        raise PredictionLogError(
            f"prediction log URL {mask_password(url)!r}: maxlen must be a positive whole number"
        ) from None
    redis_url = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        redis.ConnectionPool.from_url(redis_url)
    except ValueError as error:
        raise PredictionLogError(f"prediction log URL {mask_password(url)!r} is not a Redis URL: {error}") from None
    return redis_url, stream, maxlen


def mask_password(url: str) -> str:
    """``url`` fit for a log line: any password replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def with_password_file(settings: Settings) -> Settings:
    """``settings`` with the password that ``prediction_log_password_file`` holds put into the prediction log's URL.

    Read when the service starts, as the API keys' file is, not when the variables are parsed: the secret is
    mounted only where the service runs, and ``scripts/doctor`` checks the same variables elsewhere.
    """
    path = settings.prediction_log_password_file
    if path is None:
        return settings
    variable, log_variable = env_name("prediction_log_password_file"), env_name("prediction_log")
    url = settings.prediction_log
    if url is None:
        raise SettingsError(f"{variable} is set but {log_variable} is not: set the database's URL, without a password")
    try:
        parsed: URL | None = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.get_backend_name() not in ("postgresql", "postgres", "mysql", "mariadb"):
        raise SettingsError(
            f"{variable} gives a password, but {log_variable}={mask_password(url)!r} is not the URL of a "
            "PostgreSQL, MySQL or MariaDB server"
        )
    if parsed.password is not None:
        raise SettingsError(f"{variable} gives a password, but {log_variable} has one already: keep only one of them")
    try:
        # Secret files usually end with a newline that is not part of the password.
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"{variable}: cannot read {path}: {error}") from None
    if not password:
        raise SettingsError(f"{variable}: {path} is empty")
    with_password = parsed.set(password=password).render_as_string(hide_password=False)
    # The file is used up: settings given here twice keep the URL as it is.
    return replace(settings, prediction_log=with_password, prediction_log_password_file=None)

"""The prediction log: every scored customer recorded, without ever slowing or failing a request.

:meth:`PredictionLog.record` only appends to a bounded in-memory queue; a background thread of the
same process writes the queue in batches to the sink the URL names (see :mod:`churn.log_sinks`).
When the sink is down the thread retries with exponential backoff and the queue keeps up to
``buffer`` records; past that, records are dropped and counted. Gunicorn forks its workers after
loading the app, so the thread, the queue and the sink's connections are made in the process that
records, never inherited.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from churn.log_sinks import CONNECT_TIMEOUT_S, PredictionLogError, Sink, mask_password, sink_factory
from churn.schema import FeatureValues

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
RETRY_CAP_S = 5.0
FIRST_RETRY_S = 0.05
# At most one line per interval about dropped records, however many requests drop them.
WARN_INTERVAL_S = 10.0
# ready() trusts the writer's last contact with the sink for this long, then probes.
PROBE_AFTER_S = 5.0
# How long the writer lets records gather before writing a batch smaller than BATCH_SIZE: each write
# costs a transaction (SQLite: some 330 µs of CPU, against 9 µs a row), and each time the writer wakes
# it takes the interpreter lock from the requests: under load its CPU a record was 36 µs at 0.05 s, 19 at 0.5.
GATHER_S = 0.5


class PredictionRecord(NamedTuple):
    """One scored customer, as the log stores it.

    A named tuple: made for each scored customer in the request's thread, where a frozen dataclass
    cost 1.5 µs and this 0.6.
    """

    request_id: str
    logged_at: datetime  # UTC, timezone-aware
    endpoint: str
    customer_id: str | None
    # Cleaned, in schema order (schema.feature_values): a record held for a while keeps no dict of the request's.
    features: FeatureValues
    probability: float
    decision: bool
    threshold: float
    model_sha256: str
    model_c: float
    latency_ms: float  # the whole request's, the same for all its records


class LogObserver(Protocol):
    """What the log reports as it goes, for metrics."""

    def written(self, count: int) -> None:
        """``count`` records were written to the sink."""

    def dropped(self, count: int) -> None:
        """``count`` records were dropped: the buffer was full, or a record could not be stored."""

    def queued(self, size: int) -> None:
        """``size`` records are held in memory, waiting to be written; told on writes, failed attempts and drops."""


class _Throttle:
    """Says yes at most once per interval."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -interval

    def allows(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        return True


@dataclass
class _Writer:
    """The queue, thread and sink of one process."""

    pid: int = field(default_factory=os.getpid)
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: deque[PredictionRecord] = field(default_factory=deque)
    # Queued plus being written: what the buffer bounds.
    held: int = 0
    wake: threading.Event = field(default_factory=threading.Event)
    # Set when close() is called: the thread writes what it holds without gathering more.
    closed: threading.Event = field(default_factory=threading.Event)
    # Set when close() gives up waiting: the thread stops retrying.
    halt: threading.Event = field(default_factory=threading.Event)
    closing: bool = False
    failing: bool = False
    # What the last probe or write found; ready() reads it.
    reachable: bool = False
    last_contact: float = -PROBE_AFTER_S
    thread: threading.Thread | None = None
    # Built by the thread, so that a request never waits for a driver to load.
    sink: Sink[Any] | None = None
    built: threading.Event = field(default_factory=threading.Event)
    # Held around every call into the sink, and by a fork: a child must not inherit a driver's
    # internal lock (SQLite's, say) taken by a write in progress, which no thread would release there.
    io_lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, limit: int) -> list[PredictionRecord]:
        with self.lock:
            count = min(limit, len(self.queue))
            return [self.queue.popleft() for _ in range(count)]


class PredictionLog:
    """Records predictions to a sink from a bounded queue and a background thread, per process."""

    def __init__(
        self,
        url: str,
        buffer: int = 100_000,
        observer: LogObserver | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        retry_cap: float = RETRY_CAP_S,
        gather: float = GATHER_S,
    ) -> None:
        if buffer < 1:
            raise PredictionLogError(f"the prediction log's buffer must hold at least 1 record, not {buffer}")
        self.sink_name = mask_password(url.strip())
        self._new_sink: Callable[[], Sink[Any]] = sink_factory(url)
        self._buffer = buffer
        self._observer = observer
        self._batch_size = batch_size
        self._retry_cap = retry_cap
        self._gather = gather
        self._writer: _Writer | None = None
        # The writer whose sink a fork in progress keeps still.
        self._forking: _Writer | None = None
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._drop_warning = _Throttle(WARN_INTERVAL_S)
        self._dropped_unreported = 0
        _LOGS.add(self)

    def record(self, records: Sequence[PredictionRecord]) -> None:
        """Queue ``records`` for writing, or drop them if the buffer is full; never blocks, never raises."""
        try:
            writer = self._this_process_writer()
            with writer.lock:
                room = 0 if writer.closing else self._buffer - writer.held
                kept = records if len(records) <= room else records[:room]
                # The writer waits to be woken only once it has found the queue empty.
                idle = not writer.queue
                writer.queue.extend(kept)
                writer.held += len(kept)
                held = writer.held
            if idle:
                writer.wake.set()
            if len(kept) < len(records):
                self._report_queue(held)
                self._drop(len(records) - len(kept), f"the buffer of {self._buffer} records is full")
        except Exception:
            # A request must not fail for its log; the traceback says what to fix.
            logger.exception("Prediction log: could not queue records")

    def ready(self) -> bool:
        """Whether the sink takes writes now, as the writer thread last found it; never waits on the sink.

        Under gevent a request that waited on a database would hold up every request of its worker, so
        the thread probes (while idle, every ``PROBE_AFTER_S``) and this only reads what it found.
        """
        writer = self._this_process_writer()
        return (
            writer.built.is_set()
            and writer.reachable
            and not writer.failing
            and time.monotonic() - writer.last_contact < 2 * PROBE_AFTER_S + CONNECT_TIMEOUT_S
        )

    def close(self, timeout: float) -> int:
        """Write what is queued, waiting at most ``timeout`` seconds; the number of records left unwritten.

        Records given to :meth:`record` afterwards are dropped.
        """
        writer = self._writer
        if writer is None or writer.pid != os.getpid() or writer.thread is None:
            return 0
        with writer.lock:
            writer.closing = True
        writer.closed.set()
        writer.wake.set()
        writer.thread.join(timeout)
        if writer.thread.is_alive():
            writer.halt.set()
        with writer.lock:
            return writer.held

    def _this_process_writer(self) -> _Writer:
        # A forked child starts with no writer (_after_fork_in_child), so the pids need no comparing here:
        # os.getpid() is a system call, which would cost a request more than queueing its records.
        writer = self._writer
        if writer is not None:
            return writer
        with self._start_lock:
            writer = self._writer
            if writer is None or writer.pid != os.getpid():
                writer = _Writer()
                writer.thread = threading.Thread(target=self._run, args=(writer,), name="prediction-log", daemon=True)
                writer.thread.start()
                self._writer = writer
            return writer

    def _before_fork(self) -> None:
        writer = self._writer
        if writer is not None and writer.pid == os.getpid():
            writer.io_lock.acquire()
            self._forking = writer

    def _after_fork_in_parent(self) -> None:
        if self._forking is not None:
            self._forking.io_lock.release()
            self._forking = None

    def _after_fork_in_child(self) -> None:
        # The parent's queue is the parent's to write, and a lock held by one of its threads at the
        # fork would never be released here.
        self._writer = None
        self._forking = None
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()

    def _run(self, writer: _Writer) -> None:
        with writer.io_lock:
            sink = writer.sink = self._new_sink()
        self._probe(writer, sink)
        writer.built.set()
        try:
            while True:
                if 0 < writer.held < self._batch_size:
                    writer.closed.wait(self._gather)
                writer.wake.clear()
                batch = writer.take(self._batch_size)
                if batch:
                    self._write(writer, sink, batch)
                elif writer.closing or writer.halt.is_set():
                    return
                elif not writer.wake.wait(PROBE_AFTER_S):
                    # Idle: find out whether the sink would take a write, for ready().
                    self._probe(writer, sink)
                if writer.halt.is_set():
                    return
        finally:
            with writer.io_lock:
                sink.close()

    @staticmethod
    def _probe(writer: _Writer, sink: Sink[Any]) -> None:
        with writer.io_lock:
            up = sink.probe()
        if up:
            writer.last_contact = time.monotonic()
        writer.reachable = up

    def _write(self, writer: _Writer, sink: Sink[Any], batch: list[PredictionRecord]) -> None:
        items = []
        for record in batch:
            try:
                items.append(sink.encode(record))
            except Exception:
                logger.exception("Prediction log: cannot store record %r", record)
        batch_id = uuid.uuid4().hex
        attempts = 0
        while items:
            try:
                with writer.io_lock:
                    sink.write(items, batch_id, retrying=attempts > 0)
                break
            except Exception as error:
                attempts += 1
                if not writer.failing:
                    logger.warning(
                        "Prediction log: cannot write to %s (%s); retrying, holding up to %d records",
                        self.sink_name,
                        " ".join(str(error).split()),
                        self._buffer,
                    )
                writer.failing = True
                writer.reachable = False
                self._report_queue(writer.held)
                if writer.halt.wait(self._backoff(attempts)):
                    return
        if writer.failing:
            logger.warning("Prediction log: writing to %s again after %d failed attempts", self.sink_name, attempts)
        writer.failing = False
        writer.reachable = True
        writer.last_contact = time.monotonic()
        with writer.lock:
            writer.held -= len(batch)
            held = writer.held
        if self._observer is not None:
            self._observer.written(len(items))
        self._report_queue(held)
        if len(items) < len(batch):
            self._drop(len(batch) - len(items), "records could not be stored")

    def _report_queue(self, held: int) -> None:
        # Reported on writes, failed attempts and drops, not on every record: the gauge costs a request
        # as much as queueing its records does.
        if self._observer is not None:
            self._observer.queued(held)

    def _backoff(self, attempts: int) -> float:
        # Jitter keeps the workers of a server from retrying in step.
        return min(self._retry_cap, FIRST_RETRY_S * 2**attempts) * random.uniform(0.5, 1.0)

    def _drop(self, count: int, reason: str) -> None:
        if self._observer is not None:
            self._observer.dropped(count)
        with self._drop_lock:
            self._dropped_unreported += count
            if not self._drop_warning.allows():
                return
            dropped, self._dropped_unreported = self._dropped_unreported, 0
        logger.warning("Prediction log: dropped %d records (%s; sink %s)", dropped, reason, self.sink_name)


def open_prediction_log(url: str, buffer: int, observer: LogObserver | None = None) -> PredictionLog:
    """The prediction log writing to ``url``; :class:`PredictionLogError` if the URL is not one it can use."""
    return PredictionLog(url, buffer, observer)


_LOGS: weakref.WeakSet[PredictionLog] = weakref.WeakSet()


def _before_fork() -> None:
    for log in _LOGS:
        log._before_fork()


def _after_fork_in_parent() -> None:
    for log in _LOGS:
        log._after_fork_in_parent()


def _after_fork_in_child() -> None:
    for log in _LOGS:
        log._after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)

__all__ = ["LogObserver", "PredictionLog", "PredictionLogError", "PredictionRecord", "open_prediction_log"]

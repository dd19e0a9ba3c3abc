"""Prometheus metrics: what the service counts, exposed at ``GET /metrics``, right under several gunicorn workers.

Under gunicorn every worker is its own process, so the counts live in ``prometheus_client``'s
multiprocess files in ``PROMETHEUS_MULTIPROC_DIR`` (``gunicorn.conf.py`` creates and empties it at
start) and ``/metrics`` adds them up. When a worker exits, :func:`retire_worker` folds its counts into
one archive file per kind and deletes its files, so totals stay exact and restarts pile nothing up.
Without that variable (tests, ``python predict.py``) the counts are this process's own.

Requests count into plain numbers of their process (:class:`_Tally`); a thread of each process adds
them to ``prometheus_client``'s values every :data:`FLUSH_INTERVAL_S`, as does ``/metrics`` before it
answers and a worker before it stops. Eight writes into the multiprocess files cost a request about
12 µs; a tally costs it about 2. A worker killed outright loses at most its last interval's counts.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from bisect import bisect_left
from collections import Counter as Counts
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.mmap_dict import MmapedDict

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# From a fast scoring request (~100 us) to a large batch or upload.
DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
# Kinds whose values add up across processes; a dead worker's share of them is kept in the archive.
SUMMED_KINDS = ("counter", "histogram", "summary")
# How stale a worker's counts in /metrics may be: far below Prometheus' scrape intervals (15 s and up).
FLUSH_INTERVAL_S = 1.0


class _ProcessId:
    """The id of the process, read at start and again in a forked child."""

    def __init__(self) -> None:
        self.value = os.getpid()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        """Read the id again: this is a new process."""
        self.value = os.getpid()

    def __call__(self) -> int:
        return self.value


# In multiprocess mode prometheus_client asks for the process id on every increment, to notice a fork:
# os.getpid() is a system call, and a request makes eight increments. The id is kept instead (the hook
# prometheus_client offers for this), set before any metric is made so all share one set of files.
if values.ValueClass._multiprocess:
    values.ValueClass = values.MultiProcessValue(_ProcessId())


def multiprocess_dir() -> Path | None:
    """The multiprocess directory, when this process runs under gunicorn's configuration."""
    value = os.environ.get(MULTIPROCESS_VARIABLE)
    return Path(value) if value else None


class _Buckets:
    """A histogram's observations since the last flush: a count per bucket (the last one +Inf) and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        """Count ``amount`` in the first bucket whose bound it does not exceed, as prometheus_client does."""
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def flush_into(self, histogram: Histogram) -> None:
        """Add these observations to ``histogram`` (a child, without labels left to give)."""
        if not any(self.counts):
            return
        # prometheus_client observes one amount at a time; its per-bucket values (uncumulated in
        # multiprocess mode) take many at once. Pinned by Pipfile.lock; tests/http read the result.
        for value, count in zip(histogram._buckets, self.counts, strict=True):
            if count:
                value.inc(count)
        histogram._sum.inc(self.total)


class _Tally:
    """What one process counted since its last flush."""

    def __init__(self) -> None:
        self.requests: Counts[tuple[str, int]] = Counts()
        self.durations: dict[str, _Buckets] = {}
        self.churned = 0
        self.stayed = 0
        self.probabilities = _Buckets(PROBABILITY_BUCKETS)
        self.batch_rows = _Buckets(BATCH_BUCKETS)


class Metrics:
    """The service's metrics, registered in a registry of their own (so several apps can live in one test run)."""

    def __init__(self, model_metadata: dict[str, object]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "churn_requests_total", "Requests answered, by endpoint and status.", ["endpoint", "status"],
            registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "churn_request_duration_seconds", "Time to answer a request, by endpoint.", ["endpoint"],
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.predictions = Counter(
            "churn_predictions_total", "Customers scored, by decision.", ["decision"], registry=registry
        )
        self.probability = Histogram(
            "churn_prediction_probability", "Churn probabilities given.", buckets=PROBABILITY_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "churn_batch_rows", "Customers per scoring request.", buckets=BATCH_BUCKETS, registry=registry
        )
        info = Gauge(
            "churn_model_info", "The model being served (always 1).", ["sha256", "c", "sklearn"],
            multiprocess_mode="max", registry=registry,
        )  # fmt: skip
        versions: dict[str, str] = model_metadata["versions"]  # type: ignore[assignment]
        info.labels(str(model_metadata["model_sha256"]), str(model_metadata["C"]), versions["scikit-learn"]).set(1)
        self.log_queue = Gauge(
            "churn_prediction_log_queue", "Records waiting for the prediction log's database.",
            multiprocess_mode="livesum", registry=registry,
        )  # fmt: skip
        self.log_written = Counter(
            "churn_prediction_log_written", "Records written to the prediction log.", registry=registry
        )
        self.log_dropped = Counter(
            "churn_prediction_log_dropped", "Records dropped because the prediction log's buffer was full.",
            registry=registry,
        )  # fmt: skip
        # Held by requests for their counts and by a flush to take them: threads of a worker share it.
        self._lock = threading.Lock()
        self._tally = _Tally()
        _ALL.add(self)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        with self._lock:
            tally = self._tally
            tally.requests[endpoint, status] += 1
            durations = tally.durations.get(endpoint)
            if durations is None:
                durations = tally.durations[endpoint] = _Buckets(DURATION_BUCKETS)
            durations.observe(seconds)
        if _flusher is None:
            _start_flusher()

    def scored(self, probabilities: list[float], threshold: float) -> None:
        """Count the customers of one scoring request."""
        with self._lock:
            tally = self._tally
            churned = 0
            for probability in probabilities:
                tally.probabilities.observe(probability)
                churned += probability >= threshold
            tally.churned += churned
            tally.stayed += len(probabilities) - churned
            tally.batch_rows.observe(len(probabilities))

    def flush(self) -> None:
        """Add what this process counted since the last flush to the metrics (their files, under gunicorn)."""
        with self._lock:
            tally, self._tally = self._tally, _Tally()
        for (endpoint, status), count in tally.requests.items():
            self.requests.labels(endpoint, str(status)).inc(count)
        for endpoint, durations in tally.durations.items():
            durations.flush_into(self.duration.labels(endpoint))
        if tally.churned:
            self.predictions.labels("churn").inc(tally.churned)
        if tally.stayed:
            self.predictions.labels("no_churn").inc(tally.stayed)
        tally.probabilities.flush_into(self.probability)
        tally.batch_rows.flush_into(self.batch_rows)

    # The prediction log's observer (churn.prediction_log.LogObserver), called by its writer thread.
    def written(self, count: int) -> None:
        """Records the prediction log wrote."""
        self.log_written.inc(count)

    def dropped(self, count: int) -> None:
        """Records the prediction log dropped."""
        self.log_dropped.inc(count)

    def queued(self, size: int) -> None:
        """Records the prediction log holds now."""
        self.log_queue.set(size)

    def _forget_parents(self) -> None:
        # A forked child counts from nothing: the parent's counts are the parent's to flush.
        self._lock = threading.Lock()
        self._tally = _Tally()

    def exposition(self) -> bytes:
        """The Prometheus text format: every worker's counts added up under gunicorn, else this process's."""
        self.flush()
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=str(directory))
        return generate_latest(combined)


_ALL: weakref.WeakSet[Metrics] = weakref.WeakSet()
# This process's flusher of every Metrics, started by the first request it counts.
_flusher: threading.Thread | None = None
_flusher_lock = threading.Lock()


def _start_flusher() -> None:
    global _flusher
    with _flusher_lock:
        if _flusher is None:
            # A real thread (churn/workers.py leaves threads unpatched): it runs even while requests do.
            _flusher = threading.Thread(target=_flush_every_interval, name="metrics-flush", daemon=True)
            _flusher.start()


def _flush_every_interval() -> None:
    # An event never set, to wait on: gevent patches time.sleep, which would start a hub in this thread.
    wait = threading.Event().wait
    while True:
        wait(FLUSH_INTERVAL_S)
        for metrics in list(_ALL):
            try:
                metrics.flush()
            except Exception:
                # The next interval tries again with these counts lost; the thread must not die of it.
                logger.exception("Metrics: could not write this process's counts")


def _after_fork_in_child() -> None:
    global _flusher, _flusher_lock
    _flusher, _flusher_lock = None, threading.Lock()
    for metrics in _ALL:
        metrics._forget_parents()


os.register_at_fork(after_in_child=_after_fork_in_child)


def retire_worker(directory: Path, pid: int) -> None:
    """Fold the files of dead worker ``pid`` into the archive files and delete them.

    Counters and histograms keep their counts (the archive is one more "process" to the collector);
    a dead worker's gauges no longer describe anything and go.
    """
    multiprocess.mark_process_dead(pid, str(directory))
    for path in directory.glob(f"*_{pid}.db"):
        kind = path.name.split("_", 1)[0]
        if kind in SUMMED_KINDS:
            archive = MmapedDict(str(directory / f"{kind}_archive.db"))
            try:
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path)):
                    archived, _ = archive.read_value(key)
                    archive.write_value(key, archived + value, timestamp)
            finally:
                archive.close()
        path.unlink()

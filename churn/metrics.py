"""Prometheus metrics: what the service counts, exposed at ``GET /metrics``, right under several gunicorn workers.

Under gunicorn every worker is its own process, so the counts live in ``prometheus_client``'s
multiprocess files in ``PROMETHEUS_MULTIPROC_DIR`` (``gunicorn.conf.py`` creates and empties it at
start) and ``/metrics`` adds them up. When a worker exits, :func:`retire_worker` folds its counts into
one archive file per kind and deletes its files, so totals stay exact and restarts pile nothing up.
Without that variable (tests, ``python predict.py``) the counts are this process's own.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.mmap_dict import MmapedDict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# From a fast scoring request (~100 us) to a large batch or upload.
DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
# Kinds whose values add up across processes; a dead worker's share of them is kept in the archive.
SUMMED_KINDS = ("counter", "histogram", "summary")


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
        # Children looked up once: labels() takes a lock and builds a key on every call.
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._churn = self.predictions.labels("churn")
        self._stay = self.predictions.labels("no_churn")

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        children = self._request_children.get((endpoint, status))
        if children is None:
            children = self.requests.labels(endpoint, str(status)), self.duration.labels(endpoint)
            self._request_children[endpoint, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def scored(self, probabilities: list[float], threshold: float) -> None:
        """Count the customers of one scoring request."""
        churned = 0
        for probability in probabilities:
            self.probability.observe(probability)
            churned += probability >= threshold
        if churned:
            self._churn.inc(churned)
        if churned < len(probabilities):
            self._stay.inc(len(probabilities) - churned)
        self.batch_rows.observe(len(probabilities))

    # The prediction log's observer (churn.prediction_log.LogObserver).
    def written(self, count: int) -> None:
        """Records the prediction log wrote."""
        self.log_written.inc(count)

    def dropped(self, count: int) -> None:
        """Records the prediction log dropped."""
        self.log_dropped.inc(count)

    def queued(self, size: int) -> None:
        """Records the prediction log holds now."""
        self.log_queue.set(size)

    def exposition(self) -> bytes:
        """The Prometheus text format: every worker's counts added up under gunicorn, else this process's."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=str(directory))
        return generate_latest(combined)


def prepare_directory(directory: Path) -> None:
    """Create ``directory`` empty, for a server starting: counts from an earlier run must not be added in."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


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

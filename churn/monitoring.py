"""Watching the served model from its prediction log: drift and realised performance over a window, and their gauges.

The figures are aggregated by the database (:mod:`churn.drift`, :mod:`churn.outcomes`): Python sees a few
hundred numbers whatever the window holds. A window is the last N predictions or a time range; each
computation first pins the newest row's id, so that rows written meanwhile do not blur its figures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import Connection, Engine, create_engine, func, inspect, select
from sqlalchemy.engine import URL

from churn import drift, outcomes, summaries
from churn.drift import Distribution, DriftTally
from churn.errors import MalformedInput
from churn.log_sinks import CONNECT_TIMEOUT_S, PREDICTIONS, SQLITE_BUSY_TIMEOUT_S, database_url
from churn.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

NO_PREDICTIONS = "No predictions logged yet: drift is measured once the service has scored customers."
EMPTY_WINDOW = "No predictions in this window: widen it."
NO_OUTCOMES = (
    "No outcomes yet: send what really happened to POST /feedback, and realised AUC and calibration appear here."
)
_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# How long close() lets the background counting of tallies finish.
REFRESH_WAIT_S = 30.0
# The background counting keeps the tallies of this many most recent predictions counted: the largest
# window a first look answers as fast as a later one.
KEEP_COUNTED = 1_000_000


@dataclass(frozen=True)
class MonitoringSettings:
    """What monitoring looks at and when it raises a flag; each field is the setting ``monitoring_`` + its name."""

    # Predictions in the default window: the most recent ones.
    window: int = 10_000
    # PSI from which a distribution is worth watching, and above which it calls for action.
    psi_watch: float = 0.1
    psi_act: float = 0.25
    # The gauges' figures are at most this old; computing them takes aggregate queries.
    metrics_interval_s: float = 300.0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise SettingsError(f"the monitoring window must hold at least 1 prediction, not {self.window}")
        if not 0 < self.psi_watch < self.psi_act:
            raise SettingsError(
                f"PSI thresholds must satisfy 0 < watch < act, not watch={self.psi_watch} and act={self.psi_act}"
            )
        if not self.metrics_interval_s >= 0:
            raise SettingsError(f"the metrics interval must be 0 s or more, not {self.metrics_interval_s}")

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringSettings:
        """The service settings' ``monitoring_*`` fields."""
        return cls(**{item.name: getattr(settings, f"monitoring_{item.name}") for item in fields(cls)})


@dataclass(frozen=True)
class Window:
    """The predictions looked at: the ``last`` N, or those logged from ``since`` until ``until`` (default: now)."""

    last: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, last: str | None, since: str | None, until: str | None, now: datetime) -> Window:
        """A window from text: ``last=5000``, or ``since=7d`` / ``since=2024-05-01T00:00Z`` and maybe ``until``."""
        if last is not None and (since is not None or until is not None):
            raise MalformedInput("Give either last (a number of predictions) or since/until (a time range), not both.")
        if last is not None:
            if not last.strip().isdigit() or int(last) < 1:
                raise MalformedInput(f"last must be a whole number of predictions, at least 1, not {last!r}.")
            return cls(last=int(last))
        if until is not None and since is None:
            raise MalformedInput("until needs since: give the start of the time range too.")
        start = None if since is None else moment(since, now, "since")
        end = None if until is None else moment(until, now, "until")
        if start is not None and end is not None and end <= start:
            raise MalformedInput("until must be later than since.")
        return cls(since=start, until=end)

    def as_dict(self, default_last: int) -> dict[str, object]:
        """The JSON form, saying which predictions it covers."""
        if self.since is None:
            return {"last": self.last or default_last}
        return {"since": self.since.isoformat(), "until": None if self.until is None else self.until.isoformat()}


def moment(text: str, now: datetime, name: str) -> datetime:
    """A point in time: a duration before ``now`` (``30m``, ``24h``, ``7d``, ``2w``) or an ISO 8601 date and time."""
    relative = _DURATION.fullmatch(text.strip().lower())
    if relative:
        return now - timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    try:
        return outcomes.parse_time(text)
    except ValueError:
        raise MalformedInput(
            f"{name} must be a duration back from now (30m, 24h, 7d, 2w) or an ISO 8601 date and time, not {text!r}."
        ) from None


def monitoring_engine(url: URL) -> Engine:
    """An engine for monitoring's reads and the outcomes' writes to the prediction log's database."""
    if url.get_backend_name() == "sqlite":
        # A plain transaction: the log's writer takes SQLite's write lock at BEGIN, which readers must not.
        return create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    return create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, pool_pre_ping=True)


class Monitor:
    """Drift and performance of the model whose training ``reference`` is given, from the log at ``url``."""

    def __init__(
        self,
        url: URL,
        reference: Mapping[str, Any],
        settings: MonitoringSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.url = url
        self.reference = reference
        self.settings = settings
        self.clock = clock
        self._engine: Engine | None = None
        # Stored drift tallies count against these reference bins only.
        self._reference_digest = hashlib.sha256(json.dumps(reference, sort_keys=True).encode()).hexdigest()
        self._pid = 0
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._refreshing: threading.Thread | None = None
        self._refresh_again = False

    def window(self, last: str | None = None, since: str | None = None, until: str | None = None) -> Window:
        """:meth:`Window.parse` at the monitor's clock."""
        return Window.parse(last, since, until, self.clock())

    def drift(self, window: Window) -> dict[str, object]:
        """Every feature's and the probability's drift in ``window``, and the probability's distribution over time."""
        settings = self.settings
        document: dict[str, object] = {
            "window": window.as_dict(settings.window),
            "thresholds": {"watch": settings.psi_watch, "act": settings.psi_act},
        }
        counters = drift.counters(self.reference)
        kind = self._drift_kind(counters)
        with self.engine().connect() as connection:
            newest = self._newest(connection)
            if newest is None:
                return {**document, "rows": 0, "message": NO_PREDICTIONS}
            counted = self._counted(connection, window, kind, newest)
        summaries.store(self.engine(), kind, counted)
        measured = drift.measure(counted.tally, counters, settings.psi_watch, settings.psi_act)
        if measured is None:
            return {**document, "rows": 0, "message": EMPTY_WINDOW}
        days = drift.bucket_days(measured.first, measured.last)
        return {
            **document,
            "rows": measured.rows,
            "message": None,
            "first_logged_at": measured.first.isoformat(),
            "last_logged_at": measured.last.isoformat(),
            "features": [feature.as_dict() for feature in measured.features],
            "probability": measured.probability.as_dict(),
            "timeline": {
                "bucket_days": days,
                "bins": measured.probability.bins,
                "buckets": drift.timeline(counted.tally, days),
            },
        }

    def performance(self, window: Window) -> dict[str, object]:
        """Realised AUC, precision, recall and calibration in ``window``, overall and per week."""
        document: dict[str, object] = {"window": window.as_dict(self.settings.window)}
        with self.engine().connect() as connection:
            newest = self._newest(connection)
            if newest is None:
                return {**document, "labelled": 0, "message": NO_PREDICTIONS}
            if not inspect(connection).has_table(outcomes.OUTCOMES.name):
                return {**document, "labelled": 0, "message": NO_OUTCOMES}
            kind = self._performance_kind(connection)
            counted = self._counted(connection, window, kind, newest)
        summaries.store(self.engine(), kind, counted)
        figures = outcomes.performance(counted.tally)
        return {**document, "message": None if figures["labelled"] else NO_OUTCOMES, **figures}

    def record(self, found: Sequence[outcomes.Outcome]) -> int:
        """Store outcomes, creating their table the first time; how many subjects were stored.

        New outcomes make the stored performance tallies stale: they are counted again (:meth:`keep_counted`).
        """
        with self.engine().begin() as connection:
            outcomes.OUTCOMES.create(connection, checkfirst=True)
            outcomes.REVISIONS.create(connection, checkfirst=True)
            stored = outcomes.record(connection, found, self.clock())
        self.keep_counted()
        return stored

    def keep_counted(self) -> None:
        """Count, in a thread of this process, the tallies a look would have to count, so it reads them instead.

        Those of whole blocks among the last :data:`KEEP_COUNTED` predictions that have none, and those made
        stale by new outcomes or another model. If counting is under way, it runs again once done.
        """
        with self._refresh_lock:
            if self._refreshing is not None:
                self._refresh_again = True
            else:
                self._refreshing = threading.Thread(target=self._refresh, name="monitoring-count", daemon=True)
                self._refreshing.start()

    def engine(self) -> Engine:
        """The engine of this process: a pool must not cross a fork, so a worker makes its own."""
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                self._engine = monitoring_engine(self.url)
                self._pid = os.getpid()
            return self._engine

    def close(self) -> None:
        """Let a refresh of the tallies finish (for up to :data:`REFRESH_WAIT_S`), then close the connections."""
        with self._refresh_lock:
            refreshing = self._refreshing
        if refreshing is not None:
            refreshing.join(REFRESH_WAIT_S)
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None

    def _refresh(self) -> None:
        """:meth:`keep_counted`'s thread: count until nothing new came meanwhile."""
        while True:
            try:
                self._count_ahead()
            except Exception:
                logger.exception("monitoring: cannot count the tallies of the prediction log in the background")
            with self._refresh_lock:
                if not self._refresh_again:
                    self._refreshing = None
                    return
                self._refresh_again = False

    def _count_ahead(self) -> None:
        """Count and store the tallies of the recent whole blocks, then of the stale ones, for drift and performance."""
        counters = drift.counters(self.reference)
        for performance in (False, True):
            for recent in (True, False):
                with self.engine().connect() as connection:
                    newest = self._newest(connection)
                    if newest is None or (performance and not inspect(connection).has_table(outcomes.OUTCOMES.name)):
                        return
                    kind: summaries.Kind[Any] = (
                        self._performance_kind(connection) if performance else self._drift_kind(counters)
                    )
                    span = summaries.Span.last(KEEP_COUNTED, newest) if recent else summaries.stale(connection, kind)
                    if span is None:
                        continue
                    counted = summaries.total(connection, kind, span)
                # Stored between the spans: the stale span's blocks may be the recent ones.
                summaries.store(self.engine(), kind, counted)

    def _drift_kind(self, counters: list[Distribution]) -> summaries.Kind[DriftTally]:
        """Drift tallies, counted for ``counters`` (from the model's reference)."""
        return summaries.Kind(
            "drift", self._reference_digest, lambda c, w: drift.tally(c, w, counters), drift.DriftTally.from_json,
            drift.DriftTally,
        )  # fmt: skip

    @staticmethod
    def _performance_kind(connection: Connection) -> summaries.Kind[outcomes.PerformanceTally]:
        """Performance tallies, made on the outcomes known now."""
        return summaries.Kind(
            "performance", outcomes.known(connection), outcomes.tally, outcomes.PerformanceTally.from_json,
            outcomes.PerformanceTally,
        )  # fmt: skip

    @staticmethod
    def _newest(connection: Connection) -> int | None:
        """The newest logged row's id, ``None`` when nothing was ever logged.

        Windows end there, so that rows logged during a computation do not blur its figures.
        """
        if not inspect(connection).has_table(PREDICTIONS.name):
            return None
        return connection.scalar(select(func.max(PREDICTIONS.c.id)))

    def _counted(
        self, connection: Connection, window: Window, kind: summaries.Kind[summaries.T], newest: int
    ) -> summaries.Counted[summaries.T]:
        """The tally of the window's rows up to id ``newest``."""
        ids, logged_at = PREDICTIONS.c.id, PREDICTIONS.c.logged_at
        if window.since is not None:
            conditions = [ids <= newest, logged_at >= window.since]
            if window.until is not None:
                conditions.append(logged_at < window.until)
            bounds: Any = connection.execute(select(func.min(ids), func.max(ids)).where(*conditions)).one()
            first, last = bounds
            span = (
                summaries.Span(newest + 1, newest)
                if first is None
                else summaries.Span(first, last, window.since, window.until)
            )
            return summaries.total(connection, kind, span)
        count = window.last or self.settings.window
        # Ids without gaps, as they mostly are, give the oldest at once; else the index is walked back from the newest.
        counted = summaries.total(connection, kind, summaries.Span.last(count, newest))
        if counted.rows < count and newest >= count:
            oldest = connection.scalar(select(ids).where(ids <= newest).order_by(ids.desc()).offset(count - 1).limit(1))
            counted = summaries.total(connection, kind, summaries.Span(0 if oldest is None else oldest, newest))
        return counted


class MonitoringGauges:
    """``churn_feature_psi{feature}`` and ``churn_realised_auc`` over the default window, for Prometheus to alert on.

    :meth:`refresh` recomputes them when they are older than the interval, so a scrape costs the aggregate
    queries at most once per interval per process. Under gunicorn every worker writes its own copy of a gauge;
    ``mostrecent`` has ``/metrics`` show the copy set last, which is the freshest figure whichever worker
    computed it (``max`` would keep a stale high PSI after drift went away).
    """

    def __init__(
        self, registry: CollectorRegistry, monitor: Monitor, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.monitor = monitor
        self.clock = clock
        self.psi = Gauge(
            "churn_feature_psi", "Population stability index of each feature (and the probability) against training, "
            "over the default monitoring window.", ["feature"], multiprocess_mode="mostrecent", registry=registry,
        )  # fmt: skip
        self.auc = Gauge(
            "churn_realised_auc", "AUC of the predictions in the default monitoring window that have an outcome "
            "(NaN until there are both churned and staying customers).", multiprocess_mode="mostrecent",
            registry=registry,
        )  # fmt: skip
        # Unknown until computed: 0 would read as a model gone wrong and fire alerts.
        self.auc.set(math.nan)
        self._lock = threading.Lock()
        self._due = -math.inf

    def refresh(self) -> None:
        """Recompute the gauges if the interval has passed; on failure keep the last figures and log why.

        Also has the monitor count the tallies of the blocks filled meanwhile, in the background.
        """
        with self._lock:
            now = self.clock()
            if now < self._due:
                return
            self._due = now + self.monitor.settings.metrics_interval_s
            self.monitor.keep_counted()
            try:
                window = Window()
                found: Any = self.monitor.drift(window)
                performance = self.monitor.performance(window)
            except Exception:
                logger.exception("monitoring: cannot compute the drift and AUC gauges")
                return
            if found["rows"]:
                for feature in [*found["features"], found["probability"]]:
                    self.psi.labels(feature["name"]).set(feature["psi"])
            auc = performance.get("auc")
            self.auc.set(math.nan if auc is None else float(auc))  # type: ignore[arg-type]


def unavailable(prediction_log: str | None, metadata: Mapping[str, object]) -> str | None:
    """Why monitoring cannot run for this log URL and model metadata, or ``None`` when it can."""
    if prediction_log is None:
        return (
            "Monitoring reads the prediction log, which is off: set CHURN_PREDICTION_LOG to an SQL database "
            "(sqlite:///..., postgresql://..., mysql+pymysql://...)."
        )
    if prediction_log.strip() == "stdout" or prediction_log.lower().startswith(("redis", "rediss", "unix")):
        return "Monitoring needs the prediction log in an SQL database; CHURN_PREDICTION_LOG names a stream."
    if not isinstance(metadata.get("reference"), Mapping):
        return "The model's metadata has no reference distributions to compare with: retrain with `python train.py`."
    return None


def service_monitor(prediction_log: str | None, metadata: Mapping[str, object], settings: object) -> Monitor | None:
    """The monitor of a service with this log URL, model metadata and settings; ``None`` when :func:`unavailable`."""
    if prediction_log is None or unavailable(prediction_log, metadata) is not None:
        return None
    return Monitor(database_url(prediction_log), metadata["reference"], MonitoringSettings.from_settings(settings))  # type: ignore[arg-type]

"""Drift: how far the logged customers and probabilities are from the training reference, counted in SQL.

An aggregate query counts, for every feature, the rows of each training category or below each of the
reference's bin edges, and another the rows per day and probability tenth: a :class:`DriftTally`, which adds
up across blocks of the log (:mod:`churn.summaries`). The shares, the population stability index (PSI) and
the share never seen in training follow from those few numbers, so the cost does not depend on Python seeing
rows. Also here: the SQL that puts rows in time buckets and probability bins, which the outcomes' figures share.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, case, func, literal_column, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from churn import reference, schema
from churn.log_sinks import PREDICTIONS

PROBABILITY = "probability"
STABLE, WATCH, ACT = "stable", "watch", "act"
# Days from the Unix epoch (a Thursday) back to the Monday before it: weeks start on Mondays, as ISO's do.
_MONDAY_OFFSET = 3
EPOCH = date(1970, 1, 1)
# Windows spanning more days than this are drawn week by week rather than day by day.
DAILY_SPAN_DAYS = 62


class epoch_days(FunctionElement[float]):
    """Days since 1970-01-01 UTC of a timestamp column, as a fraction, in each database's own words."""

    inherit_cache = True


@compiles(epoch_days, "sqlite")
def _sqlite_days(element: epoch_days, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"


@compiles(epoch_days, "postgresql")
def _postgresql_days(element: epoch_days, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) / 86400.0)"


@compiles(epoch_days, "mysql")
@compiles(epoch_days, "mariadb")
def _mysql_days(element: epoch_days, compiler: SQLCompiler, **kw: Any) -> str:
    # Not UNIX_TIMESTAMP(): it reads a DATETIME in the session's time zone, and the log stores UTC.
    return f"(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', {compiler.process(element.clauses, **kw)}) / 86400000000.0)"


class whole(FunctionElement[int]):
    """The whole part of a non-negative number (SQLite may lack FLOOR, and its CAST truncates)."""

    type = Integer()
    inherit_cache = True


@compiles(whole)
def _floor(element: whole, compiler: SQLCompiler, **kw: Any) -> str:
    return f"FLOOR({compiler.process(element.clauses, **kw)})"


@compiles(whole, "sqlite")
def _truncate(element: whole, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


def time_bucket(column: ColumnElement[Any], days: int) -> ColumnElement[int]:
    """The ``days``-long bucket of a timestamp, counted from the epoch's Monday; see :func:`bucket_start`."""
    # The width is written into the SQL, not bound: PostgreSQL groups only by expressions it sees as the same.
    return whole((epoch_days(column) + _MONDAY_OFFSET) / literal_column(str(int(days))))


def bucket_start(bucket: int, days: int) -> date:
    """The first day of :func:`time_bucket`'s bucket number ``bucket``."""
    return EPOCH + timedelta(days=int(bucket) * days - _MONDAY_OFFSET)


def bucket_days(first: datetime, last: datetime) -> int:
    """1 (days) for a window spanning at most :data:`DAILY_SPAN_DAYS` days, else 7 (weeks)."""
    return 1 if (last - first).days <= DAILY_SPAN_DAYS else 7


def bin_index(column: ColumnElement[Any], edges: Sequence[float]) -> ColumnElement[int]:
    """The bin ``[e_i, e_i+1)`` (the last one closed) of each value, as :func:`reference.bin_shares` bins; else -1."""
    last = len(edges) - 2
    whens = [(column < edges[0], -1)]
    whens += [(column < edge, index) for index, edge in enumerate(edges[1:-1])]
    whens.append((column <= edges[-1], max(last, 0)))
    return case(*whens, else_=-1)


def probability_bin(column: ColumnElement[Any]) -> ColumnElement[int]:
    """The tenth of the probability scale each probability falls in, 0 to 9, as the reference bins them."""
    return bin_index(column, reference.PROBABILITY_EDGES)


def bin_labels(edges: Sequence[float], percent: bool = False) -> list[str]:
    """Readable names of the bins between ``edges``."""
    shown = [f"{edge * 100:g}%" if percent else f"{edge:g}" for edge in edges]
    if len(shown) == 1:
        return [shown[0]]
    return [f"{low} to {high}" for low, high in pairwise(shown)]


def status(psi: float, watch: float, act: float) -> str:
    """What a PSI calls for: below ``watch`` stable, up to ``act`` watch, above it act."""
    if psi > act:
        return ACT
    return WATCH if psi >= watch else STABLE


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the probability's) distribution in the window against training's."""

    name: str
    kind: str
    psi: float
    status: str
    # Values training never had: an unknown category, or a number outside the training range.
    unseen_share: float
    bins: list[str]
    reference: list[float]
    current: list[float]

    def as_dict(self) -> dict[str, object]:
        """The JSON form."""
        return asdict(self)


class Distribution(ABC):
    """The SQL counts one distribution needs, and the shares they give."""

    def __init__(self, name: str, kind: str, column: ColumnElement[Any], bins: list[str], expected: list[float]):
        self.name, self.kind, self.column, self.bins, self.expected = name, kind, column, bins, expected

    @abstractmethod
    def counts(self) -> list[ColumnElement[int]]:
        """The counts to select."""

    @abstractmethod
    def shares(self, counts: Sequence[int], rows: int) -> list[float]:
        """The share of the ``rows`` in each training bin, from the selected ``counts``."""

    def drift(self, counts: Sequence[int], rows: int, watch: float, act: float) -> FeatureDrift:
        """The distribution in ``rows`` counted as :meth:`counts`, against training's."""
        current = self.shares(counts, rows)
        unseen = max(0.0, 1.0 - sum(current))
        psi = reference.psi([*self.expected, 0.0], [*current, unseen])
        return FeatureDrift(
            self.name, self.kind, psi, status(psi, watch, act), unseen, self.bins, self.expected, current
        )


class _Categories(Distribution):
    """A categorical feature: the rows of each category training had."""

    def __init__(self, name: str, shares: Mapping[str, float]) -> None:
        flag = isinstance(schema.CATEGORICAL.get(name, ("",))[0], int)
        self.values = [int(value) if flag else value for value in shares]
        super().__init__(name, "categorical", PREDICTIONS.c[name], list(shares), [float(s) for s in shares.values()])

    def counts(self) -> list[ColumnElement[int]]:
        return [func.count(case((self.column == value, 1))) for value in self.values]

    def shares(self, counts: Sequence[int], rows: int) -> list[float]:
        return [count / rows for count in counts]


class _Bins(Distribution):
    """A number: the rows below each edge, and at or below the last, from which each bin's rows follow."""

    def __init__(self, name: str, kind: str, column: ColumnElement[Any], edges: list[float], shares: list[float]):
        super().__init__(name, kind, column, bin_labels(edges, percent=kind == PROBABILITY), [float(s) for s in shares])
        self.edges = edges

    def counts(self) -> list[ColumnElement[int]]:
        below = [func.count(case((self.column < edge, 1))) for edge in self.edges]
        return [*below, func.count(case((self.column <= self.edges[-1], 1)))]

    def shares(self, counts: Sequence[int], rows: int) -> list[float]:
        # counts: rows below e_0 ... below e_k, then at or below e_k. Bins are [e_i, e_i+1), the last closed.
        *below, within = counts
        tops = [*below[1:-1], within]
        return [(top - bottom) / rows for bottom, top in zip(below, tops, strict=False)]


def counters(reference_document: Mapping[str, Any]) -> list[Distribution]:
    """A counter for every feature of the reference that the log has a column for, then the probability."""
    columns = PREDICTIONS.c
    found: list[Distribution] = [
        _Categories(name, shares) for name, shares in reference_document["categorical"].items() if name in columns
    ]
    found += [
        _Bins(name, "numerical", columns[name], summary["edges"], summary["shares"])
        for name, summary in reference_document["numerical"].items()
        if name in columns
    ]
    probability = reference_document["probability"]
    found.append(_Bins(PROBABILITY, PROBABILITY, columns.probability, probability["edges"], probability["shares"]))
    return found


@dataclass
class DriftTally:
    """What drift is computed from, for some rows; tallies add up.

    Their number, first and last time, the counters' counts in order, and per day (:func:`time_bucket` of
    width 1) the rows in each probability tenth.
    """

    rows: int = 0
    first: datetime | None = None
    last: datetime | None = None
    counts: list[int] = field(default_factory=list)
    days: dict[int, list[int]] = field(default_factory=dict)

    def add(self, other: DriftTally) -> None:
        """Count ``other``'s rows in too."""
        if not other.rows:
            return
        self.rows += other.rows
        self.first = other.first if self.first is None else min(self.first, other.first)  # type: ignore[type-var]
        self.last = other.last if self.last is None else max(self.last, other.last)  # type: ignore[type-var]
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)] if self.counts else other.counts
        for day, shares in other.days.items():
            mine = self.days.setdefault(day, [0] * len(shares))
            self.days[day] = [a + b for a, b in zip(mine, shares, strict=True)]

    def as_json(self) -> dict[str, object]:
        """The stored form (:meth:`from_json` reads it)."""
        return {
            "rows": self.rows,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "counts": self.counts,
            "days": [[day, *shares] for day, shares in self.days.items()],
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> DriftTally:
        """A tally stored by :meth:`as_json`."""
        return cls(
            document["rows"],
            as_utc(document["first"]),
            as_utc(document["last"]),
            document["counts"],
            {day: shares for day, *shares in document["days"]},
        )


def tally(connection: Connection, where: ColumnElement[bool], found: Sequence[Distribution]) -> DriftTally:
    """The rows ``where`` selects, counted for the counters ``found``: two aggregate queries."""
    logged_at = PREDICTIONS.c.logged_at
    columns: list[ColumnElement[Any]] = [func.count(), func.min(logged_at), func.max(logged_at)]
    for counter in found:
        columns += counter.counts()
    row = connection.execute(select(*columns).where(where)).one()
    if not row[0]:
        return DriftTally()
    inner = select(
        time_bucket(logged_at, 1).label("day"), probability_bin(PREDICTIONS.c.probability).label("bin")
    ).where(where).subquery()  # fmt: skip
    days: dict[int, list[int]] = {}
    bins = len(reference.PROBABILITY_EDGES) - 1
    result: Any = connection.execute(select(inner.c.day, inner.c.bin, func.count()).group_by(inner.c.day, inner.c.bin))
    for day, index, count in result:
        days.setdefault(int(day), [0] * bins)[int(index)] += int(count)
    return DriftTally(int(row[0]), as_utc(row[1]), as_utc(row[2]), [int(n) for n in row[3:]], days)


@dataclass(frozen=True)
class Drift:
    """The window's drift: its rows, first and last prediction, and each distribution against training's."""

    rows: int
    first: datetime
    last: datetime
    features: list[FeatureDrift]
    probability: FeatureDrift


def measure(counted: DriftTally, found: Sequence[Distribution], watch: float, act: float) -> Drift | None:
    """Every distribution of the tallied rows against training's; ``None`` when there are none."""
    if not counted.rows or counted.first is None or counted.last is None:
        return None
    drifts, start = [], 0
    for counter in found:
        width = len(counter.counts())
        drifts.append(counter.drift(counted.counts[start : start + width], counted.rows, watch, act))
        start += width
    return Drift(counted.rows, counted.first, counted.last, drifts[:-1], drifts[-1])


def timeline(counted: DriftTally, days: int) -> list[dict[str, object]]:
    """The share of each probability tenth per ``days``-long bucket, oldest first."""
    buckets: dict[int, list[int]] = {}
    for day, counts in counted.days.items():
        # A day's bucket number is whole days since the epoch's Monday, so a wider bucket's is a whole division.
        bucket = buckets.setdefault(day // days, [0] * len(counts))
        buckets[day // days] = [a + b for a, b in zip(bucket, counts, strict=True)]
    return [
        {
            "start": bucket_start(bucket, days).isoformat(),
            "rows": sum(counts),
            "shares": [count / sum(counts) for count in counts],
        }
        for bucket, counts in sorted(buckets.items())
    ]


def as_utc(moment: datetime | str | None) -> datetime | None:
    """A timestamp as the database returns it, timezone-aware in UTC (SQLite gives naive UTC, or text in SQL)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

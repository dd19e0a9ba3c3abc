"""Outcomes: what really happened to the customers scored, stored beside the prediction log, and how predictions fared.

An outcome is about one of three subjects, the most specific one counting for a prediction:

- a request and a customer in it (``request_id`` and ``customerid``): that prediction;
- a request (``request_id`` only): every prediction of that request, usually one;
- a customer (``customerid`` only): that customer's predictions logged up to ``observed_at``.

Sending an outcome again for the same subject replaces it. The figures (AUC, precision, recall, calibration)
come from a :class:`PerformanceTally`, counted in SQL per calendar week (Monday to Sunday, UTC), probability
tenth and thousandth, and decision; tallies add up across blocks of the log (:mod:`churn.summaries`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Integer,
    MetaData,
    Table,
    and_,
    case,
    func,
    inspect,
    select,
)

from churn import schema
from churn.drift import bin_labels, bucket_start, probability_bin, time_bucket, whole
from churn.errors import InvalidCustomer, Problem
from churn.log_sinks import MAX_CUSTOMER_ID, OUTCOMES, PREDICTIONS
from churn.prediction import OversizedRecord, batch_records, parse_json
from churn.reference import PROBABILITY_EDGES

# The log's request ids: what the service keeps of a caller's X-Request-ID, within the log's column.
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")
WEEK_DAYS = 7


# One row per call of record(), in its transaction: monitoring's stored tallies name the outcomes they
# counted by the last revision, and a new one makes them stale.
REVISIONS = Table(
    "churn_outcome_revisions",
    MetaData(),
    Column("revision", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("recorded_at", OUTCOMES.c.recorded_at.type, nullable=False),
    Column("outcomes", Integer, nullable=False),
)


# As the prediction log stores time: microseconds, which MySQL's DATETIME keeps only when asked.
@dataclass(frozen=True)
class Outcome:
    """What happened to a customer (or to the customers of a request) by ``observed_at``."""

    customer_id: str | None
    request_id: str | None
    churned: bool
    observed_at: datetime

    @property
    def subject(self) -> str:
        """The digest that names what the outcome is about."""
        return hashlib.sha256(json.dumps([self.request_id, self.customer_id]).encode()).hexdigest()


def parse_feedback(body: bytes, max_batch_size: int, now: datetime) -> list[Outcome]:
    """The outcomes in a ``/feedback`` body: one object or an array, all or nothing, refused as ``/predict`` refuses."""
    document = parse_json(body, max_batch_size, "outcome")
    if isinstance(document, Mapping):
        return [parse_outcome(document, now)]
    batch = batch_records(document, max_batch_size, "outcome")
    outcomes: list[Outcome] = []
    problems: list[Problem] = []
    for index, record in enumerate(batch):
        try:
            if not isinstance(record, Mapping):
                raise InvalidCustomer([Problem(None, f"must be an outcome object, not {schema.json_type(record)}")])
            outcomes.append(parse_outcome(record, now))
        except InvalidCustomer as error:
            problems.extend(problem.at(index) for problem in error.problems)
    if problems:
        raise InvalidCustomer(problems)
    return outcomes


def parse_outcome(record: Mapping[str, object], now: datetime) -> Outcome:
    """One outcome: ``customerid`` and/or ``request_id``, ``churned`` (true or false), ``observed_at`` (default now).

    Keys are read with the schema's rule (``customerID`` is ``customerid``); others are ignored.
    """
    if isinstance(record, OversizedRecord):
        raise InvalidCustomer([record.problem("outcome")])
    fields = {schema.normalise(key): value for key, value in record.items()}
    problems: list[Problem] = []
    customer_id = fields.get(schema.ID_FIELD)
    request_id = fields.get("request_id")
    if customer_id is None and request_id is None:
        problems.append(Problem(schema.ID_FIELD, "is required, or request_id: say whose outcome this is"))
    if customer_id is not None:
        if isinstance(customer_id, bool) or not isinstance(customer_id, str | int):
            problems.append(
                Problem(schema.ID_FIELD, f"must be a string or an integer, not {schema.json_type(customer_id)}")
            )
        elif not 0 < len(str(customer_id)) <= MAX_CUSTOMER_ID:
            problems.append(Problem(schema.ID_FIELD, f"must have 1 to {MAX_CUSTOMER_ID} characters"))
    if request_id is not None and not (isinstance(request_id, str) and REQUEST_ID.fullmatch(request_id)):
        problems.append(
            Problem(
                "request_id",
                f"must be a request id as /predict answers it (X-Request-ID), not {schema.describe(request_id)}",
            )
        )
    churned = fields.get("churned")
    if not isinstance(churned, bool):
        message = "is required" if churned is None else f"must be true or false, not {schema.describe(churned)}"
        problems.append(Problem("churned", message))
    observed_at = now
    if fields.get("observed_at") is not None:
        try:
            observed_at = parse_time(fields["observed_at"])
        except ValueError as error:
            problems.append(Problem("observed_at", str(error)))
        else:
            if observed_at > now:
                problems.append(Problem("observed_at", f"is in the future: {observed_at.isoformat()}"))
    if problems:
        raise InvalidCustomer(problems)
    return Outcome(
        None if customer_id is None else str(customer_id),
        request_id,  # type: ignore[arg-type]
        churned,  # type: ignore[arg-type]
        observed_at,
    )


def parse_time(value: object) -> datetime:
    """An ISO 8601 date or date and time; without an offset it is UTC. ``ValueError`` says what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO 8601 date and time as a string, not {schema.json_type(value)}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"must be an ISO 8601 date and time such as 2024-05-31T12:00:00Z, not {schema.describe(value)}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def record(connection: Connection, outcomes: Sequence[Outcome], now: datetime) -> int:
    """Store ``outcomes``, each replacing any earlier one about the same subject; how many subjects were stored."""
    rows = {
        outcome.subject: {
            "subject": outcome.subject,
            "customer_id": outcome.customer_id,
            "request_id": outcome.request_id,
            "churned": outcome.churned,
            "observed_at": outcome.observed_at,
            "recorded_at": now,
        }
        for outcome in outcomes
    }
    # Deleting then inserting is an upsert every database here understands, in the caller's transaction.
    connection.execute(OUTCOMES.delete().where(OUTCOMES.c.subject.in_(list(rows))))
    connection.execute(OUTCOMES.insert(), list(rows.values()))
    connection.execute(REVISIONS.insert(), {"recorded_at": now, "outcomes": len(rows)})
    return len(rows)


def known(connection: Connection) -> str:
    """What names the outcomes stored now: the last revision :func:`record` made ("0" before the first)."""
    if not inspect(connection).has_table(REVISIONS.name):
        return "0"
    return str(connection.scalar(select(func.max(REVISIONS.c.revision))) or 0)


def labelled(where: ColumnElement[bool]) -> Any:
    """The window's predictions that have an outcome: week, probability, decision and churned (0 or 1)."""
    p = PREDICTIONS
    exact, by_request, by_customer = (
        OUTCOMES.alias("exact"),
        OUTCOMES.alias("by_request"),
        OUTCOMES.alias("by_customer"),
    )
    joined = (
        p.outerjoin(exact, and_(exact.c.request_id == p.c.request_id, exact.c.customer_id == p.c.customer_id))
        .outerjoin(by_request, and_(by_request.c.request_id == p.c.request_id, by_request.c.customer_id.is_(None)))
        .outerjoin(
            by_customer,
            and_(
                by_customer.c.request_id.is_(None),
                by_customer.c.customer_id == p.c.customer_id,
                by_customer.c.observed_at >= p.c.logged_at,
            ),
        )
    )
    churned = func.coalesce(exact.c.churned, by_request.c.churned, by_customer.c.churned)
    return (
        select(
            time_bucket(p.c.logged_at, WEEK_DAYS).label("week"),
            p.c.probability,
            case((p.c.decision, 1), else_=0).label("decision"),
            case((churned, 1), else_=0).label("churned"),
        )
        .select_from(joined)
        .where(where, churned.is_not(None))
        .subquery("labelled")
    )


# The AUC counts probabilities within the same thousandth as tied: see :func:`auc`.
AUC_CELLS = 1000
TENTHS = len(PROBABILITY_EDGES) - 1


@dataclass
class Week:
    """One week's labelled predictions, counted; weeks add up.

    ``tenths[t, d]``: rows, churned and the sum of probabilities in probability tenth ``t`` with decision ``d``
    (1: predicted to churn). ``cells[c]``: churned and stayed in probability thousandth ``c``, for the AUC.
    """

    tenths: np.ndarray = field(default_factory=lambda: np.zeros((TENTHS, 2, 3)))
    cells: np.ndarray = field(default_factory=lambda: np.zeros((AUC_CELLS, 2), dtype=np.int64))

    def add(self, other: Week) -> None:
        """Count ``other``'s predictions in too."""
        self.tenths += other.tenths
        self.cells += other.cells

    def figures(self) -> dict[str, object]:
        """AUC, precision, recall and calibration."""
        per_tenth = self.tenths.sum(axis=1)
        rows, churned = int(per_tenth[:, 0].sum()), int(per_tenth[:, 1].sum())
        decided, hits = self.tenths[:, 1, 0].sum(), self.tenths[:, 1, 1].sum()
        labels = bin_labels(PROBABILITY_EDGES, percent=True)
        return {
            "labelled": rows,
            "churned": churned,
            "auc": auc(self.cells),
            "precision": float(hits / decided) if decided else None,
            "recall": float(hits / churned) if churned else None,
            "calibration": [
                {"bin": label, "rows": int(n), "predicted": float(total / n), "observed": float(positives / n)}
                for label, (n, positives, total) in zip(labels, per_tenth, strict=True)
                if n
            ],
        }


def auc(cells: np.ndarray) -> float | None:
    """The AUC from churned and stayed counts per probability cell, lowest first; ``None`` without both.

    The chance that a churned customer was given more than one who stayed, ties counting half, as
    scikit-learn's ``roc_auc_score`` counts them. Probabilities within one cell count as tied, so the figure
    is exact when no two different probabilities of a churned and a staying customer share a thousandth, and
    otherwise off by at most half the share of such pairs (1e-5 on the Telco customers).
    """
    churned, stayed = cells[:, 0], cells[:, 1]
    if not churned.any() or not stayed.any():
        return None
    below = np.cumsum(stayed) - stayed
    pairs = (churned * (below + stayed / 2)).sum()
    return float(pairs / (churned.sum() * stayed.sum()))


@dataclass
class PerformanceTally:
    """What the performance figures are computed from, for some rows: their labelled predictions per week."""

    weeks: dict[int, Week] = field(default_factory=dict)

    def add(self, other: PerformanceTally) -> None:
        """Count ``other``'s rows in too."""
        for number, week in other.weeks.items():
            self.weeks.setdefault(number, Week()).add(week)

    def as_json(self) -> list[list[object]]:
        """The stored form (:meth:`from_json` reads it): per week, its number, its tenths and its cells."""
        return [
            [number, week.tenths.ravel().tolist(), week.cells.ravel().tolist()] for number, week in self.weeks.items()
        ]

    @classmethod
    def from_json(cls, document: Sequence[Sequence[Any]]) -> PerformanceTally:
        """A tally stored by :meth:`as_json`."""
        return cls(
            {
                number: Week(
                    np.array(tenths).reshape(TENTHS, 2, 3), np.array(cells, dtype=np.int64).reshape(AUC_CELLS, 2)
                )
                for number, tenths, cells in document
            }
        )


def tally(connection: Connection, where: ColumnElement[bool]) -> PerformanceTally:
    """The labelled predictions among the rows ``where`` selects, counted in one aggregate query."""
    rows = labelled(where)
    # The last cell is closed, as the last tenth is: a probability of 1 is in it.
    cell = case((rows.c.probability >= 1, AUC_CELLS - 1), else_=whole(rows.c.probability * AUC_CELLS))
    grouped = select(
        rows.c.week,
        probability_bin(rows.c.probability).label("tenth"),
        cell.label("cell"),
        rows.c.decision,
        rows.c.churned,
        rows.c.probability,
    ).subquery()
    keys = [grouped.c.week, grouped.c.tenth, grouped.c.cell, grouped.c.decision]
    query = select(
        *keys, func.count(), func.sum(grouped.c.churned), func.sum(grouped.c.probability)
    ).group_by(*keys)  # fmt: skip
    found = PerformanceTally()
    result: Any = connection.execute(query)
    for number, tenth, cell_index, decision, n, churned, total in result:
        week = found.weeks.setdefault(int(number), Week())
        week.tenths[int(tenth), int(decision)] += (int(n), int(churned), float(total))
        week.cells[int(cell_index)] += (int(churned), int(n) - int(churned))
    return found


def performance(counted: PerformanceTally) -> dict[str, object]:
    """Realised AUC, precision and recall at the logged decisions, and calibration: for the window and per week."""
    overall = Week()
    for week in counted.weeks.values():
        overall.add(week)
    weeks = [
        {"start": bucket_start(number, WEEK_DAYS).isoformat(), **week.figures()}
        for number, week in sorted(counted.weeks.items())
    ]
    return {**overall.figures(), "weeks": weeks}

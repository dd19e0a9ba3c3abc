"""Outcomes: what really happened to the customers scored, stored beside the prediction log, and how predictions fared.

An outcome is about one of three subjects, the most specific one counting for a prediction:

- a request and a customer in it (``request_id`` and ``customerid``): that prediction;
- a request (``request_id`` only): every prediction of that request, usually one;
- a customer (``customerid`` only): that customer's predictions logged up to ``observed_at``.

Sending an outcome again for the same subject replaces it. The figures (AUC, precision, recall, calibration)
are aggregated in SQL per calendar week (Monday to Sunday, UTC) and for the whole window.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    and_,
    case,
    cast,
    func,
    null,
    select,
    union_all,
)

from churn import schema
from churn.drift import bin_labels, bucket_start, probability_bin, time_bucket
from churn.errors import InvalidCustomer, Problem
from churn.log_sinks import MAX_CUSTOMER_ID, OUTCOMES, PREDICTIONS
from churn.prediction import batch_records, parse_json
from churn.reference import PROBABILITY_EDGES

# The log's request ids: what the service keeps of a caller's X-Request-ID, within the log's column.
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")
WEEK_DAYS = 7


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
    document = parse_json(body)
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
    return len(rows)


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


@dataclass
class _Tally:
    """Counts of labelled predictions: per probability tenth, and the decisions."""

    bins: list[list[float]]  # per bin: rows, churned, sum of probabilities
    decided: int = 0  # predicted to churn
    hits: int = 0  # predicted to churn and churned
    rank_sum: float | None = None  # of the churned customers' probabilities, ties averaged
    auc_rows: int = 0

    @classmethod
    def empty(cls) -> _Tally:
        return cls([[0, 0, 0.0] for _ in PROBABILITY_EDGES[1:]])

    def add(self, index: int, rows: int, churned: int, probabilities: float, decided: int, hits: int) -> None:
        self.bins[index][0] += rows
        self.bins[index][1] += churned
        self.bins[index][2] += probabilities
        self.decided += decided
        self.hits += hits

    def figures(self) -> dict[str, object]:
        rows = int(sum(b[0] for b in self.bins))
        churned = int(sum(b[1] for b in self.bins))
        stayed = rows - churned
        auc = None
        if self.rank_sum is not None and churned and stayed:
            auc = (self.rank_sum - churned * (churned + 1) / 2) / (churned * stayed)
        labels = bin_labels(PROBABILITY_EDGES, percent=True)
        return {
            "labelled": rows,
            "churned": churned,
            "auc": auc,
            "precision": self.hits / self.decided if self.decided else None,
            "recall": self.hits / churned if churned else None,
            "calibration": [
                {"bin": label, "rows": int(n), "predicted": total / n, "observed": positives / n}
                for label, (n, positives, total) in zip(labels, self.bins, strict=True)
                if n
            ],
        }


def performance(connection: Connection, where: ColumnElement[bool]) -> dict[str, object]:
    """Realised AUC, precision and recall at the logged decisions, and calibration: for the window and per week."""
    rows = labelled(where)
    overall, weekly = _Tally.empty(), dict[int, _Tally]()
    binned = select(
        rows.c.week,
        probability_bin(rows.c.probability).label("bin"),
        rows.c.probability,
        rows.c.decision,
        rows.c.churned,
    ).subquery()
    counts = select(
        binned.c.week,
        binned.c.bin,
        func.count(),
        func.sum(binned.c.churned),
        func.sum(binned.c.probability),
        func.sum(binned.c.decision),
        func.sum(binned.c.decision * binned.c.churned),
    ).group_by(binned.c.week, binned.c.bin)
    result: Any = connection.execute(counts)
    for week, index, *tally in result:
        numbers = (int(tally[0]), int(tally[1]), float(tally[2]), int(tally[3]), int(tally[4]))
        overall.add(int(index), *numbers)
        weekly.setdefault(int(week), _Tally.empty()).add(int(index), *numbers)
    if weekly:
        ranks: Any = connection.execute(_rank_sums(rows))
        for week, rank_sum in ranks:
            (overall if week is None else weekly[int(week)]).rank_sum = float(rank_sum)
    weeks = [
        {"start": bucket_start(week, WEEK_DAYS).isoformat(), **tally.figures()}
        for week, tally in sorted(weekly.items())
    ]
    return {**overall.figures(), "weeks": weeks}


def _rank_sums(rows: Any) -> Any:
    """Per week, and for all weeks (week NULL), the sum of the churned customers' ranks by probability.

    The Mann-Whitney form of the AUC: ties share their average rank, as scikit-learn's ``roc_auc_score`` counts them.
    """
    groups = (
        select(rows.c.week, rows.c.probability, func.sum(rows.c.churned).label("churned"), func.count().label("n"))
        .group_by(rows.c.week, rows.c.probability)
        .cte("groups")
    )
    whole = (
        select(groups.c.probability, func.sum(groups.c.churned).label("churned"), func.sum(groups.c.n).label("n"))
        .group_by(groups.c.probability)
        .subquery()
    )

    def rank_sum(source: Any, week: ColumnElement[Any], partition: list[Any]) -> Any:
        below = func.sum(source.c.n).over(partition_by=partition or None, order_by=source.c.probability, rows=(None, 0))
        ranked = select(
            week.label("week"), source.c.churned, source.c.n, (below - source.c.n).label("below")
        ).subquery()
        average_rank = ranked.c.below + (ranked.c.n + 1) / 2.0
        return select(ranked.c.week, func.sum(ranked.c.churned * average_rank)).group_by(ranked.c.week)

    return union_all(
        rank_sum(groups, groups.c.week, [groups.c.week]),
        rank_sum(whole, cast(null(), Integer), []),
    )

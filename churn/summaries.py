"""Block tallies: monitoring's counts of whole blocks of the prediction log, stored so no window counts them again.

The log's ids are cut into blocks of :data:`BLOCK_ROWS`. A window adds up the stored tallies of the blocks it
covers whole, and counts from the rows only what is left: the partial blocks at its ends, and for a time range
the blocks it cuts through. A whole block without a usable tally is counted from its rows once and its tally
stored. A stored tally is used only while its block holds as many rows as it counted (one count over the
window's ids, grouped by block, checks them all) and while it was made on the same ``basis`` (the reference
distributions, or the outcomes known). So rows committed late (PostgreSQL hands out ids before commit, so a
lower id may commit after a higher one) or deleted, a new model and new outcomes are never added in stale. The
log is written once and never updated: a row changed in place is not noticed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, Self, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import SQLAlchemyError

from churn.drift import as_utc
from churn.log_sinks import PREDICTIONS

logger = logging.getLogger(__name__)

# Big enough that a window of a million rows adds up some sixty tallies, small enough that the partial
# blocks at its ends are quick to count from their rows.
BLOCK_ROWS = 16_384

# Part of every stored tally's basis: a change in what a tally holds makes the stored ones stale.
TALLY_FORMAT = 1

SUMMARY_METADATA = MetaData()
SUMMARIES = Table(
    "churn_monitoring_blocks",
    SUMMARY_METADATA,
    Column("kind", String(16), primary_key=True),
    Column("block", BigInteger, primary_key=True),
    # A digest of what the tally depends on besides the rows (:meth:`Kind.digest`).
    Column("basis", String(64), nullable=False),
    # What the block held when counted: while it holds the same, the tally stands.
    Column("rows", Integer, nullable=False),
    Column("first_logged_at", String(40), nullable=False),
    Column("last_logged_at", String(40), nullable=False),
    # MySQL's TEXT stops at 64 KiB; a block's performance tally can be larger.
    Column("tally", Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False),
)


class Tally(Protocol):
    """Counts that add up across rows."""

    def add(self, other: Self) -> None:
        """Count ``other``'s rows in too."""

    def as_json(self) -> Any:
        """The stored form."""


T = TypeVar("T", bound=Tally)


@dataclass(frozen=True)
class Kind(Generic[T]):
    """One kind of tally: its name, what it depends on besides the rows, and how it is counted and read back."""

    name: str
    basis: str
    count: Callable[[Connection, ColumnElement[bool]], T]
    load: Callable[[Any], T]
    empty: Callable[[], T]

    def digest(self) -> str:
        """What the stored tallies of this kind are made on: its basis, in the current tally format."""
        return hashlib.sha256(f"{TALLY_FORMAT}:{self.name}:{self.basis}".encode()).hexdigest()


@dataclass(frozen=True)
class Span:
    """The rows of a window: ids from ``first_id`` to ``last_id``, logged from ``since`` until ``until`` if given."""

    first_id: int
    last_id: int
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def last(cls, count: int, newest: int) -> Span:
        """The ids of the ``count`` rows up to ``newest``, when ids have no gaps."""
        return cls(max(newest - count + 1, 0), newest)

    def in_block(self, number: int) -> ColumnElement[bool]:
        """The SQL condition selecting the span's rows in block ``number``.

        The rows are found by id; the time range is checked row by row, in a form no index serves, so that no
        database walks its index on time over the whole range instead of the block.
        """
        ids, logged_at = PREDICTIONS.c.id, PREDICTIONS.c.logged_at
        conditions = [
            ids >= max(self.first_id, number * BLOCK_ROWS),
            ids < min(self.last_id + 1, (number + 1) * BLOCK_ROWS),
        ]
        times = []
        if self.since is not None:
            times.append(logged_at >= self.since)
        if self.until is not None:
            times.append(logged_at < self.until)
        if times:
            conditions.append(case((and_(*times), True), else_=False))
        return and_(*conditions)

    def holds(self, first: datetime, last: datetime) -> bool | None:
        """Whether rows logged from ``first`` to ``last`` are all in the time range (True), none (False) or some."""
        after = self.since is None or first >= self.since
        before = self.until is None or last < self.until
        if after and before:
            return True
        if (self.since is not None and last < self.since) or (self.until is not None and first >= self.until):
            return False
        return None


@dataclass(frozen=True)
class _Block:
    """What a whole block holds: its rows, and the first and last time they were logged."""

    rows: int
    first: datetime
    last: datetime


@dataclass
class Counted(Generic[T]):
    """A span's tally, the rows its ids cover, and the whole blocks' tallies counted on the way, for :func:`store`."""

    tally: T
    rows: int = 0
    new: dict[int, tuple[_Block, T]] = field(default_factory=dict)


def total(connection: Connection, kind: Kind[T], span: Span) -> Counted[T]:
    """The tally of ``span``'s rows: stored tallies for the whole blocks in it, the others counted from the rows."""
    found = Counted(kind.empty())
    stored = _stored(connection, kind, span.first_id // BLOCK_ROWS, span.last_id // BLOCK_ROWS)
    for number, rows in _row_counts(connection, span).items():
        found.rows += rows
        kept = stored.get(number)
        if not span.first_id <= number * BLOCK_ROWS < (number + 1) * BLOCK_ROWS <= span.last_id + 1:
            # A partial block at an end of the span: counted for this span alone.
            found.tally.add(kind.count(connection, span.in_block(number)))
            continue
        block, tally = kept if kept is not None and kept[0].rows == rows else (_facts(connection, number), None)
        inside = span.holds(block.first, block.last)
        if inside is None:
            # Cut through by the time range: counted for this span alone.
            found.tally.add(kind.count(connection, span.in_block(number)))
        elif inside:
            if tally is None:
                tally = kind.count(connection, span.in_block(number))
                found.new[number] = block, tally
            found.tally.add(tally)
    return found


def stale(connection: Connection, kind: Kind[T]) -> Span | None:
    """The blocks whose stored tallies of ``kind`` were made on another basis; ``None`` when there are none."""
    if not inspect(connection).has_table(SUMMARIES.name):
        return None
    table = SUMMARIES.c
    query = select(func.min(table.block), func.max(table.block)).where(
        table.kind == kind.name, table.basis != kind.digest()
    )
    found: Any = connection.execute(query).one()
    low, high = found
    return None if low is None else Span(int(low) * BLOCK_ROWS, (int(high) + 1) * BLOCK_ROWS - 1)


def store(engine: Engine, kind: Kind[T], counted: Counted[T]) -> None:
    """Store the whole blocks' tallies :func:`total` counted, replacing what was stored for those blocks.

    Called once the reading connection is closed: SQLite cannot turn a read into a write once the log's writer
    has written since it began. If storing fails (another process stored them first, or the database is busy),
    they are counted again next time.
    """
    if not counted.new:
        return
    rows = [
        {
            "kind": kind.name,
            "block": number,
            "basis": kind.digest(),
            "rows": block.rows,
            "first_logged_at": block.first.isoformat(),
            "last_logged_at": block.last.isoformat(),
            "tally": json.dumps(tally.as_json(), separators=(",", ":")),
        }
        for number, (block, tally) in counted.new.items()
    ]
    table = SUMMARIES.c
    try:
        with engine.begin() as connection:
            SUMMARIES.create(connection, checkfirst=True)
            connection.execute(SUMMARIES.delete().where(table.kind == kind.name, table.block.in_(list(counted.new))))
            connection.execute(SUMMARIES.insert(), rows)
    except SQLAlchemyError as error:
        logger.info("monitoring: block tallies not stored (%s); they are counted again next time", error)


def _row_counts(connection: Connection, span: Span) -> dict[int, int]:
    """The rows of ``span``'s id range in each block; empty blocks are left out. Only the ids are read."""
    ids = PREDICTIONS.c.id
    number = (ids // BLOCK_ROWS).label("block")
    query = select(number, func.count()).where(ids >= span.first_id, ids <= span.last_id).group_by(number)
    result: Any = connection.execute(query)
    return {int(block): int(rows) for block, rows in result}


def _facts(connection: Connection, number: int) -> _Block:
    """What whole block ``number`` holds now."""
    ids, logged_at = PREDICTIONS.c.id, PREDICTIONS.c.logged_at
    query = select(func.count(), func.min(logged_at), func.max(logged_at)).where(
        ids >= number * BLOCK_ROWS, ids < (number + 1) * BLOCK_ROWS
    )
    found: Any = connection.execute(query).one()
    rows, first, last = found
    return _Block(int(rows), as_utc(first), as_utc(last))  # type: ignore[arg-type]


def _stored(connection: Connection, kind: Kind[T], first: int, last: int) -> dict[int, tuple[_Block, T]]:
    """The tallies stored for blocks ``first`` to ``last`` on ``kind``'s basis, with what their blocks held."""
    if not inspect(connection).has_table(SUMMARIES.name):
        return {}
    table = SUMMARIES.c
    query = select(table.block, table.rows, table.first_logged_at, table.last_logged_at, table.tally).where(
        table.kind == kind.name, table.basis == kind.digest(), table.block.between(first, last)
    )
    result: Any = connection.execute(query)
    return {
        int(number): (_Block(int(rows), as_utc(first), as_utc(last)), kind.load(json.loads(tally)))  # type: ignore[arg-type]
        for number, rows, first, last, tally in result
    }

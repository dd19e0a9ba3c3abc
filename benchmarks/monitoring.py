"""How long monitoring takes over a large window of the prediction log: ``python -m benchmarks.monitoring``.

The log is filled with the Telco customers replayed as traffic, each with its real outcome, then copied
until it holds ``--rows`` predictions; every copy has the outcome too, so the performance figures join
every row (the worst case). The figures, in wall time: the first look at the window (which counts its
blocks from the rows and stores their tallies), later looks (the median), and after new outcomes: how
long the service takes to count the performance tallies again (in the background), and a look after that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.engine import URL

from churn import schema
from churn.arguments import integer_at_least
from churn.log_sinks import PREDICTIONS, SqlSink, database_url
from churn.model import load_model
from churn.monitoring import Monitor, MonitoringSettings, Window
from churn.outcomes import Outcome
from churn.prediction_log import PredictionRecord
from churn.settings import Settings
from churn.training import DATA_FILE, load_dataset

ROUNDS = 5
GOAL_SECONDS = 2.0
START = datetime(2024, 1, 1, tzinfo=UTC)
# One Telco replay spans about seven weeks at this pace.
STEP = timedelta(minutes=10)


def replay(
    url: URL,
    customers: Sequence[schema.Customer],
    probabilities: Sequence[float],
    prefix: str,
    start: datetime = START,
    threshold: float = 0.5,
) -> None:
    """Log ``customers`` as the service does, one every :data:`STEP` from ``start``, ids ``{prefix}{i}``."""
    sink = SqlSink(url)
    try:
        records = [
            PredictionRecord(
                request_id=f"{prefix}{i}",
                logged_at=start + i * STEP,
                endpoint="/predict",
                customer_id=f"{prefix}{i}",
                features=schema.feature_values(customer),
                probability=probability,
                decision=probability >= threshold,
                threshold=threshold,
                model_sha256="0" * 64,
                model_c=1.0,
                latency_ms=1.0,
            )
            for i, (customer, probability) in enumerate(zip(customers, probabilities, strict=True))
        ]
        sink.write([sink.encode(record) for record in records], f"replay-{prefix}", retrying=False)
    finally:
        sink.close()


def copy_until(url: URL, rows: int) -> int:
    """Copy the log's rows into it, doubling, until it holds ``rows``; the count. The database does the copying."""
    columns = [column for column in PREDICTIONS.c if column.name != "id"]
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            count = connection.execute(select(func.count()).select_from(PREDICTIONS)).scalar_one()
            while count < rows:
                copied = select(*columns).order_by(PREDICTIONS.c.id).limit(min(count, rows - count))
                connection.execute(insert(PREDICTIONS).from_select([c.name for c in columns], copied))
                count = connection.execute(select(func.count()).select_from(PREDICTIONS)).scalar_one()
    finally:
        engine.dispose()
    return count


def telco_log(url: URL, rows: int, monitor: Monitor) -> None:
    """A log of ``rows`` predictions of the Telco customers, each with the outcome the data gives."""
    model = load_model(Settings().model_path)
    dataset = load_dataset(DATA_FILE)
    replay(url, dataset.customers, model.predict_proba(dataset.customers), "telco-")
    # Observed after every copy's prediction: each copy of a customer counts with its outcome.
    observed = START + timedelta(days=365)
    monitor.record([Outcome(f"telco-{i}", None, bool(churned), observed) for i, churned in enumerate(dataset.churn)])
    copy_until(url, rows)


def timed(function: Callable[[], object], rounds: int = ROUNDS) -> float:
    """Median wall seconds of ``function`` over ``rounds`` calls: the user waits for the database too."""
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def settle(url: URL) -> None:
    """Do what PostgreSQL's autovacuum does to a log within a minute or so of a large insert.

    It vacuums an insert-only table of itself (``autovacuum_vacuum_insert_threshold``), after which counting
    ids reads no row: a long-lived log is in that state, a table filled a second ago is not.
    """
    if url.get_backend_name() != "postgresql":
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"VACUUM ANALYZE {PREDICTIONS.name}")
    finally:
        engine.dispose()


def figures(url: URL, rows: int) -> str:
    """Fill the log at ``url`` and time drift and performance (what the page asks for) over ``rows``."""
    model = load_model(Settings().model_path)
    monitor = Monitor(url, model.metadata["reference"], MonitoringSettings())  # type: ignore[arg-type]
    try:
        started = time.perf_counter()
        telco_log(url, rows, monitor)
        settle(url)
        filled = time.perf_counter() - started
        window = Window(last=rows)
        # The first look counts every block from its rows and stores the blocks' tallies; later looks read them.
        first = timed(lambda: monitor.drift(window), 1), timed(lambda: monitor.performance(window), 1)
        later = timed(lambda: monitor.drift(window)), timed(lambda: monitor.performance(window))
        # New outcomes make the stored performance tallies stale: a thread counts them again, which close() awaits.
        started = time.perf_counter()
        monitor.record([Outcome("telco-0", None, True, START + timedelta(days=366))])
        monitor.close()
        refreshed = time.perf_counter() - started
        after = timed(lambda: monitor.performance(window), 1)
    finally:
        monitor.close()
    verdict = "met" if sum(later) <= GOAL_SECONDS else "NOT MET"
    return "\n".join(
        [
            f"Monitoring over the last {rows:,} predictions, all with an outcome ({url.get_backend_name()}; "
            f"filled in {filled:.0f} s)",
            "                                 drift   performance   the page (both)",
            f"  first look (counts, stores)  {first[0]:6.2f} s  {first[1]:6.2f} s  {sum(first):6.2f} s",
            f"  later looks (median of {ROUNDS})    {later[0]:6.2f} s  {later[1]:6.2f} s  {sum(later):6.2f} s"
            f"   goal <= {GOAL_SECONDS:g} s: {verdict}",
            f"  new outcomes: their tallies counted again in the background in {refreshed:.2f} s, "
            f"then a look {after:.2f} s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark against a new SQLite file, or an empty database given by URL."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=integer_at_least(1), default=1_000_000, help="predictions in the window")
    parser.add_argument("--database", help="an empty database's URL (default: a new SQLite file)")
    args = parser.parse_args(argv)
    if args.database:
        print(figures(database_url(args.database), args.rows))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        print(figures(database_url(f"sqlite:///{Path(folder) / 'predictions.db'}"), args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

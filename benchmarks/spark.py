"""Spark figures: rows per second per core on a cluster, churn.spark against the usual pandas UDF.

The usual way is what ``mlflow.pyfunc.spark_udf`` does with the course's model: a pandas UDF that
turns each batch into dicts for ``DictVectorizer.transform`` and calls ``predict_proba``. Both run
in the same session, on the same cached rows, in interleaved rounds, writing to Spark's ``noop``
sink so that only the scoring is timed. churn.spark also validates every value; the UDF trusts them.
A third way, a pandas UDF of the same columns that computes nothing, is what Spark itself costs to
move the rows to Python and back: no way of scoring in Python can beat it.

``python -m benchmarks.spark --master spark://HOST:7077 [--rows N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from churn import schema
from churn.arguments import integer_at_least
from churn.model import ChurnModel, load_model
from churn.settings import Settings
from churn.spark import score_all, ship_package
from churn.training import DATA_FILE, load_dataset

ROWS = 4_000_000
ROUNDS = 3
SPEEDUP_GOAL = 10.0


def course_rows(spark: SparkSession, rows: int) -> DataFrame:
    """About ``rows`` customers cleaned the course's way (typed numbers), repeated from the Telco data and cached."""
    customers = pd.DataFrame(load_dataset(DATA_FILE).customers)[list(schema.FEATURES)]
    copies = spark.range(-(-rows // len(customers)), numPartitions=spark.sparkContext.defaultParallelism)
    df = copies.crossJoin(F.broadcast(spark.createDataFrame(customers))).drop("id")
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    df.count()
    return df


def course_udf(model: ChurnModel) -> Callable[..., object]:
    """The usual way: a pandas UDF of the feature columns, DictVectorizer.transform, then predict_proba."""
    vectorizer, regression = model.vectorizer, model.regression

    @pandas_udf("double")  # type: ignore[call-overload]
    def predict(*columns: pd.Series) -> pd.Series:
        frame = pd.DataFrame(dict(zip(schema.FEATURES, columns, strict=True)))
        matrix = vectorizer.transform(frame.to_dict(orient="records"))
        return pd.Series(regression.predict_proba(matrix)[:, 1])

    return predict


def nothing_udf() -> Callable[..., object]:
    """Spark's own cost: a pandas UDF of the feature columns that returns zeros without looking at them."""

    @pandas_udf("double")  # type: ignore[call-overload]
    def nothing(*columns: pd.Series) -> pd.Series:
        return pd.Series(0.0, index=columns[0].index)

    return nothing


def seconds_to_score(df: DataFrame) -> float:
    """Seconds to compute every row of ``df`` into the ``noop`` sink, which writes nothing."""
    started = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def spark_figures(spark: SparkSession, rows: int = ROWS, rounds: int = ROUNDS) -> str:
    """The report: rows per second per core for each way, the speed-up, and whether it meets the goal."""
    model = load_model(Settings().model_path)
    df = course_rows(spark, rows)
    try:
        count = df.count()
        cores = spark.sparkContext.defaultParallelism
        ways = {
            "usual: pandas UDF, DictVectorizer + predict_proba": df.select(course_udf(model)(*schema.FEATURES)),
            "churn.spark: validation + compiled tables": score_all(df, model, Settings().threshold),
            "floor: a pandas UDF that computes nothing": df.select(nothing_udf()(*schema.FEATURES)),
        }
        # One unmeasured run each: Python workers start and the model reaches every executor.
        for way in ways.values():
            way.limit(1000).write.format("noop").mode("overwrite").save()
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, way in ways.items():
                times[name].append(seconds_to_score(way))
    finally:
        df.unpersist()
    rates = {name: count / statistics.median(values) / cores for name, values in times.items()}
    usual, compiled, floor = rates.values()
    speedup = compiled / usual
    lines = [f"Spark scoring, {count:,} rows on {cores} cores ({spark.sparkContext.master}), median of {rounds} rounds"]
    lines += [f"  {name:<52} {rate:>12,.0f} rows/s per core" for name, rate in rates.items()]
    verdict = "meets" if speedup >= SPEEDUP_GOAL else "misses"
    lines.append(f"  speed-up {speedup:.1f}x: {verdict} the goal of {SPEEDUP_GOAL:.0f}x")
    lines.append(f"  (moving the rows to Python and back alone is {floor / usual:.1f}x the usual way's speed)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the figures against ``--master`` and print them."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark", description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True, help="Spark master URL, e.g. spark://127.0.0.1:7077")
    parser.add_argument("--rows", type=integer_at_least(1), default=ROWS, help=f"rows scored per round ({ROWS:,})")
    parser.add_argument("--rounds", type=integer_at_least(1), default=ROUNDS, help=f"interleaved rounds ({ROUNDS})")
    args = parser.parse_args(argv)
    spark = SparkSession.builder.master(args.master).appName("churn-spark-benchmark").getOrCreate()
    try:
        with tempfile.TemporaryDirectory() as directory:
            ship_package(spark.sparkContext, Path(directory))
            print(spark_figures(spark, args.rows, args.rounds))
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scoring Spark DataFrames: the API's validation and the compiled model, batch by batch on a cluster.

Each Arrow batch goes through :func:`churn.columns.clean_frame` (the schema's rule, as for a request
or ``predict_file.py``) and the model's :class:`~churn.scorer.Scorer` tables inside ``mapInPandas``.
The scorer is broadcast, so each executor receives it once. A row the rule refuses is not scored:
it goes to the rejects with its problems in ``errors``, and the run goes on.

``python -m churn.spark INPUT OUTPUT [--rejects PATH] [--master URL] [--format csv|parquet] [--threshold T]``
scores Parquet or CSV at any path the cluster reads; PySpark is an optional dependency
(``pipenv install --categories spark``), so nothing else in :mod:`churn` imports this module.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark import Accumulator, SparkContext
from pyspark.broadcast import Broadcast
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType

import churn
from churn import csv_files
from churn.columns import clean_frame
from churn.csv_files import PREDICTION_COLUMN, PROBABILITY_COLUMN
from churn.errors import InvalidCustomer, Problem
from churn.model import ChurnModel, ModelLoadError, load_model
from churn.scorer import Scorer
from churn.settings import Settings, SettingsError

ERRORS_COLUMN = "errors"
OUTPUT_COLUMNS = (PROBABILITY_COLUMN, PREDICTION_COLUMN, ERRORS_COLUMN)
# The columns the scoring adds to each row.
RESULT_TYPE = StructType(
    [
        StructField(PROBABILITY_COLUMN, DoubleType()),
        StructField(PREDICTION_COLUMN, BooleanType()),
        StructField(ERRORS_COLUMN, StringType()),
    ]
)
FORMATS = ("csv", "parquet")
EXIT_REJECTS = 3


def check_columns(columns: list[str]) -> None:
    """:class:`InvalidCustomer` unless ``predict_file.py`` would take these columns and none is named ``errors``.

    A column named ``errors`` in any case would clash with the rejects' own, as Spark compares names.
    """
    problems: list[Problem] = []
    try:
        csv_files.check_columns(columns)
    except InvalidCustomer as error:
        problems.extend(error.problems)
    problems.extend(
        Problem(column, "clashes with the errors column of the rejects: rename it")
        for column in columns
        if column.lower() == ERRORS_COLUMN
    )
    if problems:
        raise InvalidCustomer(problems)


def score_all(
    df: DataFrame, model: ChurnModel, threshold: float, rejected: Accumulator[int] | None = None
) -> DataFrame:
    """Every row of ``df``: its columns as text, then ``churn_probability``, ``churn`` and ``errors``.

    ``errors`` is null on the rows that were scored; on the others it says why not ("field:
    message; ..."), and the score columns hold nothing meaningful. Every column is read as text,
    as ``predict_file.py`` reads a CSV, so the schema's rule decides what a value means; a label
    column such as the Telco export's ``Churn`` is kept as ``churn_actual``, as it is there.
    ``rejected``, when given, is increased by the number of rows refused each time the rows are computed.
    """
    check_columns(df.columns)
    renames = csv_files.label_renames(df.columns)
    names = [renames.get(name, name) for name in df.columns]
    text = df.select(
        [_column(column).cast(StringType()).alias(name) for column, name in zip(df.columns, names, strict=True)]
    )
    schema = StructType([*(StructField(name, StringType()) for name in names), *RESULT_TYPE.fields])
    scorer = df.sparkSession.sparkContext.broadcast(model.scorer)
    return text.mapInPandas(functools.partial(_score_batches, scorer, threshold, rejected), schema)


def split(combined: DataFrame) -> tuple[DataFrame, DataFrame]:
    """:func:`score_all`'s rows as ``(scored, rejects)``: input columns and scores, or ``errors`` and input columns."""
    inputs = [_column(name) for name in combined.columns if name not in OUTPUT_COLUMNS]
    valid = F.col(ERRORS_COLUMN).isNull()
    scored = combined.where(valid).drop(ERRORS_COLUMN)
    rejects = combined.where(~valid).select(F.col(ERRORS_COLUMN), *inputs)
    return scored, rejects


def score_spark(df: DataFrame, model: ChurnModel, threshold: float) -> tuple[DataFrame, DataFrame]:
    """``(scored, rejects)``: the valid rows with ``churn_probability`` and ``churn``, the others with ``errors``.

    Both come from one ``mapInPandas``; persist :func:`score_all` and :func:`split` it instead to
    compute them in one pass when both are written.
    """
    return split(score_all(df, model, threshold))


def score_batch(scorer: Scorer, frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A batch of rows as text with its scores and, on the rows the schema's rule refuses, their problems."""
    columns = clean_frame(frame)
    probabilities = scorer.score_columns(columns.codes, columns.numbers)
    messages: dict[int, list[str]] = {}
    for problem in columns.problems():
        messages.setdefault(problem.index, []).append(f"{problem.field}: {problem.message}")  # type: ignore[arg-type]
    errors = np.full(len(frame), None, dtype=object)
    for index, found in messages.items():
        errors[index] = "; ".join(found)
    return frame.assign(
        **{PROBABILITY_COLUMN: probabilities, PREDICTION_COLUMN: probabilities >= threshold, ERRORS_COLUMN: errors}
    )


def _score_batches(
    scorer: Broadcast[Scorer], threshold: float, rejected: Accumulator[int] | None, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    tables = scorer.value
    for frame in batches:
        result = score_batch(tables, frame, threshold)
        if rejected is not None:
            rejected.add(int(result[ERRORS_COLUMN].notna().sum()))
        yield result


def _column(name: str) -> Column:
    # Backquoted, so a name with a dot or a space is one column, not a path into a struct.
    return F.col("`{}`".format(name.replace("`", "``")))


def ship_package(context: SparkContext, directory: Path) -> Path:
    """Zip the :mod:`churn` package into ``directory`` and add it to the executors' Python path."""
    package = Path(churn.__file__).parent
    archive = directory / "churn.zip"
    with zipfile.ZipFile(archive, "w") as stream:
        for source in sorted(package.rglob("*.py")):
            stream.write(source, source.relative_to(package.parent))
    context.addPyFile(str(archive))
    return archive


def read(spark: SparkSession, path: str, file_format: str) -> DataFrame:
    """The rows at ``path``; a CSV's values all as text, blanks kept as blanks, as ``predict_file.py`` reads them."""
    if file_format == "parquet":
        return spark.read.parquet(path)
    # FAILFAST: a row with more fields than the header is an error, as it is for pandas, not silently cut.
    df = spark.read.options(header=True, escape='"', mode="FAILFAST", encoding="UTF-8").csv(path)
    # Spark reads an empty field as null. A row of nothing but separators is skipped, as predict_file.py
    # skips it; in any other row an empty field is a blank, which the rule reads as such.
    return df.na.drop(how="all").na.fill("")


def write(df: DataFrame, path: str, file_format: str) -> None:
    """Write ``df`` at ``path`` (refused if something is there); a CSV with a header and doubled quotes."""
    writer = df.write.mode("errorifexists")
    if file_format == "parquet":
        writer.parquet(path)
    else:
        # Spark trims cells when it writes a CSV, unless told not to: " 12 " must stay what was read.
        writer.options(header=True, escape='"', ignoreLeadingWhiteSpace=False, ignoreTrailingWhiteSpace=False).csv(path)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line; the format defaults to the input's suffix, the rejects path to OUTPUT-rejects."""
    parser = argparse.ArgumentParser(prog="python -m churn.spark", description="Score customers with Spark.")
    parser.add_argument("input", help="Parquet or CSV path or URL the cluster reads (a file or a folder)")
    parser.add_argument("output", help="folder to write the scored rows to")
    parser.add_argument("--rejects", help="folder for the rows that fail validation (default: OUTPUT-rejects)")
    parser.add_argument("--master", help="Spark master URL, e.g. spark://host:7077 (default: spark-submit's or local)")
    parser.add_argument("--format", choices=FORMATS, help="input and output format (default: from INPUT's suffix)")
    parser.add_argument("--threshold", type=float, help="churn is true from here up (default: CHURN_THRESHOLD or 0.5)")
    args = parser.parse_args(argv)
    args.format = args.format or ("csv" if args.input.rstrip("/").lower().endswith(".csv") else "parquet")
    args.rejects = args.rejects or f"{args.output.rstrip('/')}-rejects"
    return args


def run(spark: SparkSession, args: argparse.Namespace, model: ChurnModel, threshold: float) -> tuple[int, int]:
    """Score ``args.input``; the numbers of rows scored and rejected, counted in what was written.

    One pass over the input when every row is valid, as is usual: an accumulator tells whether any
    was rejected, and only then is the input scored again for the rejects. Caching the scored rows
    instead would hold the whole input in the executors' memory, or spill it, on every run.
    """
    rejected = spark.sparkContext.accumulator(0)
    scored, rejects = split(score_all(read(spark, args.input, args.format), model, threshold, rejected))
    write(scored, args.output, args.format)
    # Re-read: a retried task would have counted its rows twice in an accumulator, never in the files.
    written = read(spark, args.output, args.format).count()
    if not rejected.value:
        return written, 0
    write(rejects, args.rejects, args.format)
    return written, read(spark, args.rejects, args.format).count()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; exit status 0 when every row was scored, 3 when some were rejected, 1 on failure."""
    args = arguments(argv)
    try:
        settings = Settings.from_env()
        model = load_model(settings.model_path)
    except (SettingsError, ModelLoadError) as error:
        print(f"error: cannot score {args.input}: {error}", file=sys.stderr)
        return 1
    threshold = settings.threshold if args.threshold is None else args.threshold
    builder = SparkSession.builder.appName("churn-scoring")
    if args.master:
        builder = builder.master(args.master)
    started = time.perf_counter()
    spark = builder.getOrCreate()
    try:
        with tempfile.TemporaryDirectory() as directory:
            ship_package(spark.sparkContext, Path(directory))
            scored, rejected = run(spark, args, model, threshold)
    except InvalidCustomer as error:
        print(f"error: cannot score {args.input}: {error.detail}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    seconds = time.perf_counter() - started
    print(f"{scored:,} of {scored + rejected:,} rows scored into {args.output} in {seconds:.1f} s", file=sys.stderr)
    if rejected:
        print(f"{rejected:,} rows rejected: see {args.rejects} for their problems", file=sys.stderr)
        return EXIT_REJECTS
    return 0


if __name__ == "__main__":
    # Through the module's real name: functions of ``__main__`` would be pickled whole for the executors.
    from churn import spark as command

    sys.exit(command.main())

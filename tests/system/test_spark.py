"""churn.spark on a real standalone cluster (master and two workers): the pandas path's scores and rejects; 10M rows."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from churn.errors import InvalidCustomer
from churn.file_scoring import Formats, score_file
from churn.model import ChurnModel
from churn.settings import PROJECT_DIR
from churn.training import DATA_FILE
from tests.helpers import data
from tests.helpers.spark import Cluster, require_spark, start_cluster, start_session, submit_arguments

# pyspark and pyarrow are optional (the spark category): imported where used, after require_spark().
if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# PySpark 4.3 warns on every pandas 3 import check; the parity tests below are what show it works.
PANDAS_3 = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas >= 3:FutureWarning")
THRESHOLD = 0.5
TELCO_ID = "customerID"
BIG_ROWS = 10_000_000
ROW_GROUP_ROWS = 1_000_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_spark()
    started = start_cluster(tmp_path_factory.mktemp("spark-cluster"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def spark(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    from churn.spark import ship_package

    session = start_session(cluster, "churn-tests")
    ship_package(session.sparkContext, tmp_path_factory.mktemp("package"))
    yield session
    session.stop()


@pytest.fixture(scope="module")
def expected(model: ChurnModel) -> dict[str, float]:
    """The course's predict_proba for every Telco customer, by id in lower case (as the course's cleaning leaves it)."""
    frame = data.course_frame()
    matrix = model.vectorizer.transform(frame[data.COURSE_FEATURES].to_dict(orient="records"))
    return dict(zip(frame["customerid"], model.regression.predict_proba(matrix)[:, 1].tolist(), strict=True))


def telco_text() -> pd.DataFrame:
    """The Telco export as predict_file.py reads it: every value as text, blanks kept."""
    return pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False)


def hostile_frame() -> pd.DataFrame:
    """Telco rows broken in the ways files break, a few still valid by the rule; ``None`` is a missing value."""
    frame = telco_text().head(40).astype(object)
    edits: list[tuple[int, str, str | None]] = [
        (0, "Partner", "Maybe"),
        (1, "tenure", "-3"),
        (2, "tenure", ""),
        (3, "MonthlyCharges", "abc"),
        (4, "TotalCharges", " "),
        (5, "gender", ""),
        (6, "SeniorCitizen", "2"),
        (7, "SeniorCitizen", "1.0"),
        (8, "SeniorCitizen", "yes"),
        (9, "tenure", "nan"),
        (10, "MonthlyCharges", "inf"),
        (11, "TotalCharges", "1e400"),
        (12, "InternetService", "FIBER OPTIC"),
        (13, "Contract", "month to month"),
        (14, "PaymentMethod", 'Cheque, "paper"'),
        (15, "tenure", " 12 "),
        (16, "gender", "x"),
        (16, "tenure", "-1"),
        (16, "TotalCharges", "abc"),
        (17, "MonthlyCharges", "1,000"),
        (18, TELCO_ID, ""),
        (19, "tenure", "0x10"),
        (20, "Dependents", "Ünïcode"),
        (21, "tenure", None),
        (22, "PhoneService", None),
        (23, "TotalCharges", None),
        (24, "StreamingTV", "No internet service"),
        (25, "MonthlyCharges", "-0.0"),
    ]
    for row, column, value in edits:
        frame.loc[row, column] = value
    # A line of separators only: skipped in a CSV, a row of missing values in Parquet.
    frame.loc[26] = None
    return frame


def by_predict_file(model: ChurnModel, path: Path, file_format: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(scored, rejects)`` as predict_file.py writes them for ``path``, formulas as they are, read back from Parquet.

    The rejects lose their first column, the row's line or position, which Spark cannot know.
    """
    output, rejects = io.BytesIO(), io.BytesIO()
    with path.open("rb") as source:
        score_file(model, source, output, rejects, THRESHOLD, Formats(file_format, "parquet", "parquet", escape=False))
    rejected = pd.read_parquet(rejects)
    return pd.read_parquet(output), rejected.drop(columns=rejected.columns[0])


def records(frame: pd.DataFrame, key: str = TELCO_ID) -> list[dict[str, object]]:
    """Rows sorted by ``key``, missing values as ``None``, for comparing frames from pandas and Spark."""
    frame = frame.sort_values(key).reset_index(drop=True).astype(object)
    return frame.where(frame.notna(), None).to_dict(orient="records")


def collect(df: DataFrame) -> pd.DataFrame:
    """``df``'s rows in pandas, through plain rows: toPandas' Arrow path warns under pandas 3."""
    return pd.DataFrame([row.asDict() for row in df.collect()], columns=df.columns)


def assert_same_scores(actual: list[dict[str, object]], wanted: list[dict[str, object]]) -> None:
    """The same rows and columns, probabilities within 1e-12."""
    assert [{**row, "churn_probability": None} for row in actual] == [
        {**row, "churn_probability": None} for row in wanted
    ]
    difference = np.array([row["churn_probability"] for row in actual]) - [row["churn_probability"] for row in wanted]
    assert np.abs(difference).max() <= 1e-12


def run_command(cluster: Cluster, *arguments: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m churn.spark ... --master`` the cluster, as a user runs it."""
    environ = {**os.environ, "PYSPARK_SUBMIT_ARGS": submit_arguments(cluster), "PYSPARK_PYTHON": sys.executable}
    command = [sys.executable, "-m", "churn.spark", *map(str, arguments), "--master", cluster.url]
    return subprocess.run(command, cwd=PROJECT_DIR, env=environ, capture_output=True, text=True, timeout=timeout)


def read_output(folder: Path) -> pd.DataFrame:
    """Every part of a CSV folder Spark wrote, as text."""
    parts = sorted(folder.glob("part-*.csv"))
    return pd.concat([pd.read_csv(part, dtype=str, keep_default_na=False) for part in parts], ignore_index=True)


@PANDAS_3
def test_telco_export_is_scored_as_predict_proba(
    spark: SparkSession, model: ChurnModel, expected: dict[str, float]
) -> None:
    from churn.spark import read, score_spark

    df = read(spark, str(DATA_FILE), "csv")
    scored, rejects = score_spark(df, model, THRESHOLD)

    # The Telco export's Churn label is kept as churn_actual, as predict_file.py keeps it.
    assert scored.columns == [*telco_text().columns[:-1], "churn_actual", "churn_probability", "churn"]
    assert scored.schema["churn_probability"].dataType.simpleString() == "double"
    assert scored.schema["churn"].dataType.simpleString() == "boolean"
    rows = scored.select(TELCO_ID, "churn_probability", "churn").collect()
    assert len(rows) == len(expected) == 7043
    assert max(abs(row.churn_probability - expected[row.customerID.lower()]) for row in rows) <= 1e-12
    assert all(row.churn == (row.churn_probability >= THRESHOLD) for row in rows)
    assert rejects.count() == 0


@PANDAS_3
def test_course_spelling_with_typed_columns_is_scored_as_predict_proba(
    spark: SparkSession, model: ChurnModel, expected: dict[str, float], tmp_path: Path
) -> None:
    from churn.spark import read, score_spark

    path = tmp_path / "course.parquet"
    data.course_frame().drop(columns="churn").to_parquet(path, index=False)
    df = read(spark, str(path), "parquet")
    assert df.schema["tenure"].dataType.simpleString() == "bigint"

    scored, rejects = score_spark(df, model, THRESHOLD)

    rows = scored.select("customerid", "churn_probability").collect()
    assert len(rows) == 7043
    assert max(abs(row.churn_probability - expected[row.customerid]) for row in rows) <= 1e-12
    assert rejects.count() == 0


@PANDAS_3
@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_hostile_file_gives_the_pandas_paths_rejects_and_scores(
    spark: SparkSession, model: ChurnModel, tmp_path: Path, file_format: str
) -> None:
    from churn.spark import read, score_spark

    path = tmp_path / f"hostile.{file_format}"
    if file_format == "csv":
        hostile_frame().to_csv(path, index=False)
    else:
        hostile_frame().to_parquet(path, index=False)
    wanted_scored, wanted_rejects = by_predict_file(model, path, file_format)
    assert 15 <= len(wanted_rejects) < 40

    scored, rejects = score_spark(read(spark, str(path), file_format), model, THRESHOLD)

    assert records(collect(rejects)) == records(wanted_rejects)
    assert_same_scores(records(collect(scored)), records(wanted_scored))


@PANDAS_3
def test_refuses_columns_the_pandas_path_refuses_and_one_named_errors(spark: SparkSession, model: ChurnModel) -> None:
    from churn.spark import read, score_spark

    df = read(spark, str(DATA_FILE), "csv").withColumnRenamed("tenure", "Errors").withColumnRenamed("gender", "gendre")

    with pytest.raises(InvalidCustomer) as caught:
        score_spark(df, model, THRESHOLD)

    assert [problem.field for problem in caught.value.problems] == ["gender", "tenure", "Errors"]
    assert "'gendre' a misspelling" in caught.value.problems[0].message


def test_command_writes_scored_and_rejected_csv(cluster: Cluster, model: ChurnModel, tmp_path: Path) -> None:
    source = tmp_path / "hostile.csv"
    hostile_frame().to_csv(source, index=False)
    wanted_scored, wanted_rejects = by_predict_file(model, source, "csv")

    finished = run_command(cluster, source, tmp_path / "scored")

    assert finished.returncode == 3, finished.stderr
    rows = len(wanted_scored) + len(wanted_rejects)
    assert f"{len(wanted_scored)} of {rows} rows scored" in finished.stderr
    assert records(read_output(tmp_path / "scored-rejects")) == records(wanted_rejects)
    scored = read_output(tmp_path / "scored").astype({"churn_probability": float})
    scored["churn"] = scored["churn"] == "true"
    assert_same_scores(records(scored), records(wanted_scored))


# Minutes on two busy cores: more than the suite's default limit per test.
@pytest.mark.timeout(900)
def test_command_scores_ten_million_parquet_rows_on_the_cluster(
    cluster: Cluster, expected: dict[str, float], tmp_path: Path
) -> None:
    source = tmp_path / "big.parquet"
    write_repeated_telco(source, BIG_ROWS)

    finished = run_command(cluster, source, tmp_path / "scored", timeout=800)

    assert finished.returncode == 0, finished.stderr
    assert f"{BIG_ROWS:,} of {BIG_ROWS:,} rows scored" in finished.stderr
    assert not (tmp_path / "scored-rejects").exists()
    import pyarrow.dataset

    table = pyarrow.dataset.dataset(tmp_path / "scored").to_table(columns=[TELCO_ID, "churn_probability"])
    assert table.num_rows == BIG_ROWS
    sample = table.take(np.random.default_rng(1).choice(BIG_ROWS, size=1000, replace=False)).to_pylist()
    assert max(abs(row["churn_probability"] - expected[row[TELCO_ID].lower()]) for row in sample) <= 1e-12


def write_repeated_telco(path: Path, rows: int) -> None:
    """``rows`` Telco rows, all text, repeated in row groups of ``ROW_GROUP_ROWS``."""
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet

    options = pyarrow.csv.ConvertOptions(column_types=dict.fromkeys(telco_text().columns, pa.string()))
    telco = pyarrow.csv.read_csv(DATA_FILE, convert_options=options)
    group = pa.concat_tables([telco] * -(-ROW_GROUP_ROWS // telco.num_rows)).slice(0, ROW_GROUP_ROWS)
    with pyarrow.parquet.ParquetWriter(path, group.schema) as writer:
        for start in range(0, rows, ROW_GROUP_ROWS):
            writer.write_table(group.slice(0, min(ROW_GROUP_ROWS, rows - start)))

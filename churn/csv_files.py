"""Scoring CSV files: chunk by chunk, so memory stays bounded whatever the file's size.

Rows are validated by the API's rule (:mod:`churn.columns` applies :mod:`churn.schema`); a file
that lacks a feature column or cannot be read as CSV is refused whole, before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd

from churn.columns import clean_frame, feature_columns
from churn.errors import InvalidCustomer, Problem
from churn.model import ChurnModel

# About 7 MB of Telco-shaped CSV a chunk: per-chunk costs vanish, and a run peaks near 330 MB in all.
CHUNK_ROWS = 50_000
PROBABILITY_COLUMN = "churn_probability"
PREDICTION_COLUMN = "churn"
# The header is line 1, so the first record is on line 2 (for files without line breaks in quotes).
FIRST_LINE = 2


class CsvError(ValueError):
    """The file cannot be read as CSV text."""


@dataclass(frozen=True)
class ScoredFrame:
    """A frame's valid rows with their scores appended, and its bad rows with their problems."""

    scored: pd.DataFrame
    rejects: pd.DataFrame
    problems: list[Problem]


@dataclass
class Summary:
    """What a run did: rows read, scored and rejected."""

    rows: int = 0
    scored: int = 0
    rejected: int = 0


def read_csv(source: IO[bytes], chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The file's rows as text, ``chunk_rows`` at a time; :class:`CsvError` when it is not CSV."""
    try:
        # Text, blanks kept as blanks: the schema decides what a value means, as for JSON.
        yield from pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig", chunksize=chunk_rows)
    except UnicodeDecodeError:
        raise CsvError("The file is not UTF-8 text.") from None
    except pd.errors.EmptyDataError:
        raise CsvError("The file is empty: it needs a header line and at least one row.") from None
    except pd.errors.ParserError as error:
        raise CsvError(f"The file is not valid CSV: {error}") from None


def check_columns(columns: list[str]) -> None:
    """:class:`InvalidCustomer` unless every feature has a column and no column clashes with the output's."""
    feature_columns(columns)
    clashes = [column for column in columns if column in (PROBABILITY_COLUMN, PREDICTION_COLUMN)]
    if clashes:
        raise InvalidCustomer(
            [
                Problem(column, "is a column the output adds: rename it in the file (to churn_actual, say)")
                for column in clashes
            ]
        )


def score_frame(model: ChurnModel, frame: pd.DataFrame, threshold: float, start: int = 0) -> ScoredFrame:
    """Score every valid row of ``frame``, whose first row is record ``start`` of its file."""
    columns = clean_frame(frame)
    probabilities = model.scorer.score_columns(columns.codes, columns.numbers)
    valid = ~columns.rejected
    scored = frame[valid].assign(
        **{PROBABILITY_COLUMN: probabilities[valid], PREDICTION_COLUMN: probabilities[valid] >= threshold}
    )
    problems = [problem.at(problem.index + start, problem.index + start + FIRST_LINE) for problem in columns.problems]  # type: ignore[operator]
    return ScoredFrame(scored, _rejects(frame, columns.rejected, problems, start), problems)


def _rejects(frame: pd.DataFrame, rejected: np.ndarray, problems: list[Problem], start: int) -> pd.DataFrame:
    messages: dict[int, list[str]] = {}
    for problem in problems:
        messages.setdefault(problem.line, []).append(f"{problem.field}: {problem.message}")  # type: ignore[arg-type]
    rows = frame[rejected]
    lines = np.flatnonzero(rejected) + start + FIRST_LINE
    where = pd.DataFrame({"line": lines, "errors": ["; ".join(messages[line]) for line in lines]}, index=rows.index)
    return pd.concat([where, rows], axis=1)


def score_csv(
    model: ChurnModel,
    source: IO[bytes],
    output: IO[str],
    rejects: IO[str],
    threshold: float,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Score the CSV in ``source`` into ``output``, writing its bad rows to ``rejects``.

    Output rows keep every input column, in order, with ``churn_probability`` and ``churn``
    appended; rejected rows keep theirs too, after their ``line`` and ``errors``. ``progress`` is
    called with the number of rows read so far after each chunk.
    """
    summary = Summary()
    for chunk in read_csv(source, chunk_rows):
        if summary.rows == 0:
            check_columns(list(chunk.columns))
        result = score_frame(model, chunk, threshold, start=summary.rows)
        result.scored.to_csv(output, header=summary.rows == 0, index=False)
        if len(result.rejects):
            result.rejects.to_csv(rejects, header=summary.rejected == 0, index=False)
        summary.rows += len(chunk)
        summary.scored += len(result.scored)
        summary.rejected += len(result.rejects)
        if progress is not None:
            progress(summary.rows)
    return summary

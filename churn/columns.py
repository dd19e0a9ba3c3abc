"""Customers by columns: a DataFrame cleaned by the schema's rule, each distinct value once.

A column of a million customers holds a handful of distinct categories, so each distinct value goes
through :func:`churn.schema.parse_value` (the rule a request goes through) and the rows take its
result by position. Numbers are parsed in bulk; those the bulk parser refuses get the exact rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn import schema
from churn.errors import InvalidCustomer, Problem


@dataclass(frozen=True)
class Columns:
    """A frame's features ready for :meth:`churn.scorer.Scorer.score_columns`, and its bad rows.

    ``codes`` are positions in ``schema.CATEGORICAL[name]``; rows marked in ``rejected`` hold
    placeholders and are described by ``problems`` (with ``index`` the row's position).
    """

    codes: dict[str, np.ndarray]
    numbers: dict[str, np.ndarray]
    rejected: np.ndarray
    problems: list[Problem]


def feature_columns(columns: list[str]) -> dict[str, str]:
    """Each feature's column among ``columns``, matched by the cleaning rule.

    Raises :class:`InvalidCustomer` when a feature is missing or two columns clean to one name.
    """
    found: dict[str, str] = {}
    problems: list[Problem] = []
    for column in columns:
        name = schema.normalise(str(column))
        if name in found and name in schema.FEATURES:
            problems.append(Problem(name, f"is given twice (the second time as column {column!r})"))
        found.setdefault(name, column)
    for name in schema.FEATURES:
        if name not in found:
            problems.append(Problem(name, schema.missing_message(name, found)))
    if problems:
        raise InvalidCustomer(problems)
    return {name: found[name] for name in schema.FEATURES}


def clean_frame(frame: pd.DataFrame) -> Columns:
    """The features of every row of ``frame``, with the problems of the rows that break the schema."""
    columns = feature_columns(list(frame.columns))
    rejected = np.zeros(len(frame), dtype=bool)
    problems: list[Problem] = []
    codes = {}
    for name in schema.CATEGORICAL:
        codes[name] = _category_codes(name, frame[columns[name]], rejected, problems)
    numbers = {}
    for name in schema.NUMERICAL:
        numbers[name] = _numbers(name, frame[columns[name]], rejected, problems)
    problems.sort(key=lambda problem: problem.index or 0)
    return Columns(codes, numbers, rejected, problems)


def _python(value: object) -> object:
    # Frames hold NaN (or NA) where JSON would hold null, and numpy scalars where it would hold numbers.
    if pd.isna(value):  # type: ignore[call-overload]
        return None
    return value.item() if isinstance(value, np.generic) else value


def _distinct(series: pd.Series) -> tuple[np.ndarray, list[object]]:
    """Each row's code, and the distinct values the codes index (``None`` for a missing value)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes, uniques = series.cat.codes.to_numpy(), series.cat.categories.tolist()
    elif series.dtype == object:
        # Mixed Python objects: True == 1 would share a code with 1, so each row is its own value.
        codes, uniques = np.arange(len(series)), series.tolist()
    else:
        # On the bare object array: the same codes, without the Series' overhead (a third faster).
        codes, uniques = pd.factorize(series.to_numpy(dtype=object))
        uniques = uniques.tolist()
    # A missing value has code -1, which indexes the None appended last.
    return codes, [*uniques, None]


def _has_value(row_codes: np.ndarray, code: int, distinct: list[object]) -> np.ndarray:
    """Which rows hold ``distinct[code]``; the last one, the missing value, is code -1."""
    return row_codes == (-1 if code == len(distinct) - 1 else code)


def _category_codes(name: str, series: pd.Series, rejected: np.ndarray, problems: list[Problem]) -> np.ndarray:
    row_codes, distinct = _distinct(series)
    allowed = schema.CATEGORICAL[name]
    positions = np.zeros(len(distinct), dtype=np.int8)
    for code, value in enumerate(distinct):
        try:
            positions[code] = allowed.index(schema.parse_value(name, _python(value)))  # type: ignore[arg-type]
        except schema.FieldError as error:
            rows = np.flatnonzero(_has_value(row_codes, code, distinct))
            rejected[rows] = True
            problems.extend(Problem(name, str(error), int(row), error.allowed) for row in rows)
    return positions[row_codes]


def _numbers(name: str, series: pd.Series, rejected: np.ndarray, problems: list[Problem]) -> np.ndarray:
    dtype = series.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(dtype, pd.StringDtype):
        # Accepts what float() accepts or gives NaN; what it refuses gets the exact rule below.
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        # Mixed objects (booleans among them) all get the exact rule.
        values = np.full(len(series), np.nan)
    with np.errstate(invalid="ignore"):
        suspect = np.flatnonzero(~((values >= 0) & (values < np.inf)))
    if not len(suspect):
        return values
    values = values.copy()
    row_codes, distinct = _distinct(series.iloc[suspect])
    for code, value in enumerate(distinct):
        rows = suspect[_has_value(row_codes, code, distinct)]
        try:
            values[rows] = schema.parse_value(name, _python(value))
        except schema.FieldError as error:
            values[rows] = 0.0
            rejected[rows] = True
            problems.extend(Problem(name, str(error), int(row)) for row in rows)
    return values

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
class FieldFaults:
    """Why rows of one field are bad: one message per distinct bad value, which rows index by code.

    ``codes[row]`` is the position of the row's message in ``messages``, or -1 where its value is good.
    """

    field: str
    codes: np.ndarray
    messages: list[str]
    allowed: tuple[str | int, ...] | None


@dataclass(frozen=True)
class Columns:
    """A frame's features ready for :meth:`churn.scorer.Scorer.score_columns`, and its bad rows.

    ``codes`` are positions in ``schema.CATEGORICAL[name]``; rows marked in ``rejected`` hold
    placeholders and are described by ``faults``, one per field that has a bad value, in the schema's order.
    """

    codes: dict[str, np.ndarray]
    numbers: dict[str, np.ndarray]
    rejected: np.ndarray
    faults: list[FieldFaults]

    def problems(self) -> list[Problem]:
        """Every bad value as a :class:`Problem` (``index`` its row), by row and then in the schema's order."""
        problems = []
        for fault in self.faults:
            rows = np.flatnonzero(fault.codes >= 0)
            problems.extend(
                Problem(fault.field, fault.messages[code], row, fault.allowed)
                for row, code in zip(rows.tolist(), fault.codes[rows].tolist(), strict=True)
            )
        # Stable: within a row, the fields stay in the schema's order.
        problems.sort(key=lambda problem: problem.index)  # type: ignore[arg-type,return-value]
        return problems


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
    faults: list[FieldFaults] = []
    codes = {name: _category_codes(name, frame[columns[name]], faults) for name in schema.CATEGORICAL}
    numbers = {name: _numbers(name, frame[columns[name]], faults) for name in schema.NUMERICAL}
    rejected = np.zeros(len(frame), dtype=bool)
    for fault in faults:
        rejected |= fault.codes >= 0
    return Columns(codes, numbers, rejected, faults)


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


def _held(row_codes: np.ndarray, distinct: list[object]) -> list[object]:
    """The distinct values some row holds: the missing value, last, only when a row's code is -1."""
    return distinct if (row_codes < 0).any() else distinct[:-1]


def _category_codes(name: str, series: pd.Series, faults: list[FieldFaults]) -> np.ndarray:
    row_codes, distinct = _distinct(series)
    allowed = schema.CATEGORICAL[name]
    positions = np.zeros(len(distinct), dtype=np.int8)
    bad = np.full(len(distinct), -1, dtype=np.int32)
    messages: list[str] = []
    for code, value in enumerate(_held(row_codes, distinct)):
        try:
            positions[code] = allowed.index(schema.parse_value(name, _python(value)))  # type: ignore[arg-type]
        except schema.FieldError as error:
            bad[code] = len(messages)
            messages.append(str(error))
    if messages:
        faults.append(FieldFaults(name, bad[row_codes], messages, allowed))
    return positions[row_codes]


def _numbers(name: str, series: pd.Series, faults: list[FieldFaults]) -> np.ndarray:
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
    parsed = np.zeros(len(distinct))
    bad = np.full(len(distinct), -1, dtype=np.int32)
    messages: list[str] = []
    for code, value in enumerate(_held(row_codes, distinct)):
        try:
            parsed[code] = schema.parse_value(name, _python(value))
        except schema.FieldError as error:
            bad[code] = len(messages)
            messages.append(str(error))
    values[suspect] = parsed[row_codes]
    if messages:
        codes = np.full(len(series), -1, dtype=np.int32)
        codes[suspect] = bad[row_codes]
        faults.append(FieldFaults(name, codes, messages, None))
    return values

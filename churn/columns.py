"""Customers by columns: Arrow arrays or a DataFrame cleaned by the schema's rule, each distinct value once.

A column of a million customers holds a handful of distinct categories, so each distinct value goes
through :func:`churn.schema.parse_value` (the rule a request goes through) and the rows take its
result by position. Numbers written as text are parsed in bulk where the text is plainly a valid
number; the common ways to be invalid (a minus sign, letters) get the schema's messages in bulk too,
and anything else gets the exact rule, value by value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn import schema
from churn.errors import InvalidCustomer, Problem

# Text the schema surely reads as a non-negative finite number (finiteness is checked after the cast):
# ASCII digits, a point, an exponent, a plus sign. Anything else is judged below or by the exact rule.
_PLAIN = r"^\+?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_NEGATIVE = r"^-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
# Printable ASCII without spaces, quotes or backslashes: Python's float() refuses it unless it is a
# number, inf or nan (checked apart), and repr() writes it between single quotes as it is.
_SIMPLE = r"^[!#-&(-\[\]-~]+$"
_FLOAT_WORDS = r"(?i)^[+-]?(?:inf|infinity|nan)$"
_DIGIT_BYTES = np.zeros(256, dtype=bool)
_DIGIT_BYTES[list(b"0123456789.")] = True


@dataclass(frozen=True)
class FieldFaults:
    """Why rows of one field are bad: messages, which rows index by code.

    ``codes[row]`` is the position of the row's message in ``messages``, or -1 where its value is good.
    """

    field: str
    codes: np.ndarray
    messages: pa.StringArray
    allowed: tuple[str | int, ...] | None


@dataclass(frozen=True)
class Columns:
    """Features ready for :meth:`churn.scorer.Scorer.score_columns`, and the bad rows.

    ``codes`` are positions in ``schema.CATEGORICAL[name]``; rows marked in ``rejected`` hold
    placeholders and are described by ``faults``, one per field that has a bad value, in the schema's order.
    """

    codes: dict[str, np.ndarray]
    numbers: dict[str, np.ndarray]
    rejected: np.ndarray
    faults: list[FieldFaults]

    def problems(self) -> list[Problem]:
        """Every bad value as a :class:`Problem` (``index`` its row), by row and then in the schema's order."""
        problems: list[Problem] = []
        for fault in self.faults:
            rows = np.flatnonzero(fault.codes >= 0)
            messages = fault.messages.take(pa.array(fault.codes[rows])).to_pylist()
            problems.extend(
                Problem(fault.field, message, row, fault.allowed)
                for row, message in zip(rows.tolist(), messages, strict=True)
            )
        # Stable: within a row, the fields stay in the schema's order.
        problems.sort(key=lambda problem: problem.index)  # type: ignore[arg-type,return-value]
        return problems

    def customers(self, rows: np.ndarray) -> list[schema.Customer]:
        """The ``rows`` as the API cleans a customer: each category as the schema spells it, numbers as floats."""
        columns = [
            np.asarray(allowed, dtype=object)[self.codes[name][rows]].tolist()
            for name, allowed in schema.CATEGORICAL.items()
        ]
        columns += [self.numbers[name][rows].tolist() for name in schema.NUMERICAL]
        return [dict(zip(schema.FEATURES, values, strict=True)) for values in zip(*columns, strict=True)]

    def errors(self, rows: np.ndarray) -> pa.StringArray:
        """The ``rows``' problems as text, ``field: message`` joined by ``; `` in the schema's order."""
        parts = []
        for fault in self.faults:
            codes = fault.codes[rows]
            texts = pc.binary_join_element_wise(f"{fault.field}: ", fault.messages, "")
            parts.append(texts.take(pa.array(codes, mask=codes < 0)))
        if not parts:
            return pa.array([""] * len(rows), pa.string())
        return pc.binary_join_element_wise(*parts, "; ", null_handling="skip")


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


# A column as cleaning takes it: Arrow values of any type, or Python objects of mixed types row by row.
Values: TypeAlias = "pa.Array | list[object]"


def clean_arrays(features: Mapping[str, Values]) -> Columns:
    """The features of every row, with the problems of the rows that break the schema; one array per feature."""
    faults: list[FieldFaults] = []
    codes = {name: _category_codes(name, features[name], faults) for name in schema.CATEGORICAL}
    numbers = {name: _numbers(name, features[name], faults) for name in schema.NUMERICAL}
    rejected = np.zeros(len(features[schema.NUMERICAL[0]]), dtype=bool)
    for fault in faults:
        rejected |= fault.codes >= 0
    return Columns(codes, numbers, rejected, faults)


def clean_frame(frame: pd.DataFrame) -> Columns:
    """The features of every row of ``frame``, with the problems of the rows that break the schema."""
    columns = feature_columns(list(frame.columns))
    return clean_arrays({name: _values(frame[column]) for name, column in columns.items()})


def _values(series: pd.Series) -> Values:
    """A frame's column as cleaning takes it: Arrow when its values have one type, else Python objects."""
    try:
        values = pa.array(series, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        values = None
    # A column pandas already holds in Arrow (pandas 3's text, for one) comes back as it is held: in chunks.
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    # Arrow would make 1 and 1.0 one type, and refuses True next to 1: an object column other than text
    # is judged value by value, as JSON values are.
    if values is None or (series.dtype == object and not _is_text(values.type) and not pa.types.is_null(values.type)):
        return [_python(value) for value in series.tolist()]
    return values.cast(pa.string()) if _is_text(values.type) or pa.types.is_null(values.type) else values


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _python(value: object) -> object:
    # Frames hold NaN (or NA) where JSON would hold null, and numpy scalars where it would hold numbers.
    if pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _distinct(values: Values) -> tuple[np.ndarray, list[object]]:
    """Each row's code, and the distinct values the codes index; a missing value indexes the ``None`` last."""
    if isinstance(values, list):
        # Mixed Python objects: True == 1 would share a code with 1, so each row is its own value.
        return np.arange(len(values)), [*values, None]
    encoded = values if pa.types.is_dictionary(values.type) else values.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    codes = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
    return codes, [*distinct, None]


def _judged(name: str, row_codes: np.ndarray, distinct: list[object]) -> tuple[list[object], np.ndarray, list[str]]:
    """Each distinct value some row holds, cleaned: the values (``None`` if bad), message codes and messages."""
    held = np.zeros(len(distinct), dtype=bool)
    held[row_codes] = True
    cleaned: list[object] = [None] * len(distinct)
    bad = np.full(len(distinct), -1, dtype=np.int32)
    messages: list[str] = []
    for code in np.flatnonzero(held).tolist():
        try:
            cleaned[code] = schema.parse_value(name, distinct[code])
        except schema.FieldError as error:
            bad[code] = len(messages)
            messages.append(str(error))
    return cleaned, bad, messages


def _category_codes(name: str, values: Values, faults: list[FieldFaults]) -> np.ndarray:
    row_codes, distinct = _distinct(values)
    allowed = schema.CATEGORICAL[name]
    cleaned, bad, messages = _judged(name, row_codes, distinct)
    positions = np.array([0 if value is None else allowed.index(value) for value in cleaned], dtype=np.int8)
    if messages:
        faults.append(FieldFaults(name, bad[row_codes], pa.array(messages, pa.string()), allowed))
    return positions[row_codes]


def _numbers(name: str, values: Values, faults: list[FieldFaults]) -> np.ndarray:
    if isinstance(values, pa.Array) and pa.types.is_string(values.type):
        return _text_numbers(name, values, faults)
    if isinstance(values, pa.Array) and (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        # A copy: the exact rule writes into it.
        numbers = values.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False, writable=True)
        suspect = _suspect(numbers)
    else:
        # Booleans, mixed objects, other types: every value gets the exact rule.
        numbers = np.zeros(len(values))
        suspect = np.arange(len(values))
    codes = np.full(len(values), -1, dtype=np.int32)
    messages = _exact(name, _take(values, suspect), suspect, numbers, codes)
    if messages:
        faults.append(FieldFaults(name, codes, pa.array(messages, pa.string()), None))
    return numbers


def _suspect(numbers: np.ndarray) -> np.ndarray:
    """Positions of the numbers the bulk parse does not vouch for: missing, negative or not finite."""
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(~((numbers >= 0) & (numbers < np.inf)))


def _take(values: Values, rows: np.ndarray) -> Values:
    return [values[row] for row in rows.tolist()] if isinstance(values, list) else values.take(pa.array(rows))


def _exact(
    name: str, values: Values, rows: np.ndarray, numbers: np.ndarray, codes: np.ndarray, first: int = 0
) -> list[str]:
    """Judge ``values`` (those of ``rows``) by the exact rule, each distinct value once, into ``numbers`` and ``codes``.

    Returns the messages, which ``codes`` index from ``first`` on.
    """
    if not len(rows):
        return []
    row_codes, distinct = _distinct(values)
    cleaned, bad, messages = _judged(name, row_codes, distinct)
    numbers[rows] = np.array([0.0 if value is None else value for value in cleaned])[row_codes]
    codes[rows] = np.where(bad[row_codes] >= 0, bad[row_codes] + first, -1)
    return messages


def _text_numbers(name: str, values: pa.StringArray, faults: list[FieldFaults]) -> np.ndarray:
    """Numbers written as text: plain ones cast in bulk, plainly bad ones described in bulk, the rest exactly."""
    numbers = _digits(values)
    if numbers is None:
        plain = pc.match_substring_regex(values, _PLAIN).fill_null(False)
        numbers = pc.if_else(plain, values, None).cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    suspect = _suspect(numbers)
    if not len(suspect):
        return numbers
    numbers = numbers.copy()
    codes = np.full(len(values), -1, dtype=np.int32)
    texts = values.take(pa.array(suspect))
    negative = pc.match_substring_regex(texts, _NEGATIVE).fill_null(False)
    if pc.any(negative).as_py():
        # float() reads them all; the schema refuses those below zero, not -0.
        parsed = pc.if_else(negative, texts, None).cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        negative = pa.array((parsed < 0) & (parsed > -np.inf))
    simple = pc.match_substring_regex(texts, _SIMPLE).fill_null(False)
    # Not junk: what float() reads (inf, nan, -0, 1e400), which the exact rule judges.
    for readable in (_FLOAT_WORDS, _NEGATIVE, _PLAIN):
        simple = pc.and_not(simple, pc.match_substring_regex(texts, readable).fill_null(False))
    junk = simple
    bulk = [(negative, "must not be negative, got "), (junk, "must be a number, not ")]
    described: list[pa.StringArray] = []
    first = 0
    for which, prefix in bulk:
        rows = np.flatnonzero(which.to_numpy(zero_copy_only=False))
        if len(rows):
            described.append(pc.binary_join_element_wise(prefix, _quoted(texts.take(pa.array(rows))), ""))
            codes[suspect[rows]] = first + np.arange(len(rows), dtype=np.int32)
            first += len(rows)
    rest = np.flatnonzero(~pc.or_(negative, junk).to_numpy(zero_copy_only=False))
    exact = _exact(name, texts.take(pa.array(rest)), suspect[rest], numbers, codes, first)
    messages = pa.concat_arrays([*described, pa.array(exact, pa.string())])
    if len(messages):
        faults.append(FieldFaults(name, codes, messages, None))
    return numbers


def _digits(values: pa.StringArray) -> np.ndarray | None:
    """The numbers, when every text is ASCII digits with at most a point, as most files hold them; else ``None``.

    A look at the bytes in place, then one cast: far cheaper than a regular expression per row.
    """
    data = values.buffers()[2]
    if values.null_count or data is None or not _DIGIT_BYTES[np.frombuffer(data, dtype=np.uint8)].all():
        return None
    try:
        # The cast refuses "", "." and "1.2.3", the texts of digits and points that are not numbers.
        return values.cast(pa.float64()).to_numpy()
    except pa.ArrowInvalid:
        return None


def _quoted(texts: pa.StringArray) -> pa.StringArray:
    """:func:`churn.schema.describe` of text that repr() writes between single quotes as it is (see ``_SIMPLE``)."""
    short = pc.binary_join_element_wise("'", texts, "'", "")
    lengths = pc.utf8_length(texts)
    long = pc.greater(lengths, schema.ECHO_CHARS)
    if not pc.any(long).as_py():
        return short
    cut = pc.binary_join_element_wise(
        "'", pc.utf8_slice_codeunits(texts, 0, schema.ECHO_CHARS), "'… (", lengths.cast(pa.string()), " characters)", ""
    )
    return pc.if_else(long, cut, short)

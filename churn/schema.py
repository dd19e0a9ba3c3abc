"""The feature schema and the cleaning rule: the one definition training and serving share.

The rule is the course's: names and text values are lower-cased with spaces turned into ``_``,
``totalcharges`` is numeric with blanks as 0, and ``churn`` is 1 for ``yes``. It is applied to one
record at a time, so a CSV row and a JSON request go through exactly the same code, whatever
dtype pandas gives a column.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Callable, Iterable, Mapping

from churn.errors import InvalidCustomer, Problem

ID_FIELD = "customerid"
TARGET = "churn"

CATEGORICAL: dict[str, tuple[str, ...] | tuple[int, ...]] = {
    "gender": ("female", "male"),
    # An integer flag in the data: the DictVectorizer sees it as a number, as in the course.
    "seniorcitizen": (0, 1),
    "partner": ("no", "yes"),
    "dependents": ("no", "yes"),
    "phoneservice": ("no", "yes"),
    "multiplelines": ("no", "no_phone_service", "yes"),
    "internetservice": ("dsl", "fiber_optic", "no"),
    "onlinesecurity": ("no", "no_internet_service", "yes"),
    "onlinebackup": ("no", "no_internet_service", "yes"),
    "deviceprotection": ("no", "no_internet_service", "yes"),
    "techsupport": ("no", "no_internet_service", "yes"),
    "streamingtv": ("no", "no_internet_service", "yes"),
    "streamingmovies": ("no", "no_internet_service", "yes"),
    "contract": ("month-to-month", "one_year", "two_year"),
    "paperlessbilling": ("no", "yes"),
    "paymentmethod": (
        "bank_transfer_(automatic)",
        "credit_card_(automatic)",
        "electronic_check",
        "mailed_check",
    ),
}
NUMERICAL: tuple[str, ...] = ("tenure", "monthlycharges", "totalcharges")
FEATURES: tuple[str, ...] = (*CATEGORICAL, *NUMERICAL)
_FEATURE_SET = frozenset(FEATURES)
# Customers with no bill yet have a blank total in the Telco export.
BLANK_AS_ZERO = frozenset({"totalcharges"})

Value = str | int | float
Customer = dict[str, Value]


class FieldError(ValueError):
    """Why one value is not acceptable for its field."""

    def __init__(self, message: str, allowed: tuple[str | int, ...] | None = None) -> None:
        super().__init__(message)
        self.allowed = allowed


def normalise(text: str) -> str:
    """The cleaning rule for names and text values: lower case, spaces to ``_``."""
    return text.lower().replace(" ", "_")


def json_type(value: object) -> str:
    """How a JSON user would name the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def parse_number(value: object, *, blank_as_zero: bool = False) -> float:
    """A finite, non-negative number from a JSON number or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FieldError(f"must be a number, not {json_type(value)}")
    if isinstance(value, str):
        if not value.strip():
            if blank_as_zero:
                return 0.0
            raise FieldError("must be a number, not a blank string")
        try:
            number = float(value)
        except ValueError:
            raise FieldError(f"must be a number, not {value!r}") from None
    else:
        try:
            number = float(value)
        except OverflowError:
            raise FieldError("must be a finite number") from None
    if not math.isfinite(number):
        raise FieldError("must be a finite number")
    if number < 0:
        raise FieldError(f"must not be negative, got {value!r}")
    return number


def describe(value: object) -> str:
    """``value`` as an error message quotes it: scalars as written, containers by their type."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return repr(value)
    return json_type(value)


def parse_category(value: object, allowed: tuple[str, ...] | tuple[int, ...]) -> str | int:
    """One of ``allowed``, from any spelling the cleaning rule maps onto it.

    Integer categories (``seniorcitizen``) also take numeric strings such as ``"1"``.
    """
    if isinstance(allowed[0], int):
        try:
            number = parse_number(value)
        except FieldError:
            number = math.nan
        if number in allowed:
            return int(number)
    elif isinstance(value, str):
        cleaned = normalise(value)
        if cleaned in allowed:
            return cleaned
    else:
        raise FieldError(f"must be a string, not {json_type(value)}", allowed)
    raise FieldError(f"{describe(value)} is not one of the allowed values", allowed)


def clean_customer(raw: Mapping[str, object]) -> Customer:
    """The model's features from one customer record, or :class:`InvalidCustomer` saying why not.

    Keys may be in the course's spelling (``paymentmethod``) or the Telco CSV's
    (``PaymentMethod``); keys that are not features, such as ``customerID``, are ignored.
    """
    return clean_record(raw)[0]


def clean_record(raw: Mapping[str, object]) -> tuple[Customer, str | int | None]:
    """:func:`clean_customer`, plus the customer id the record carries (``None`` if it has none)."""
    fields: dict[str, object] = {}
    problems: list[Problem] = []
    for key, value in raw.items():
        name = _NAMES.get(key) or _remember_name(key)
        if name in fields and name in _FEATURE_SET:
            problems.append(Problem(name, f"is given twice (the second time as {key!r})"))
        fields[name] = value

    customer_id = fields.get(ID_FIELD)
    if customer_id is not None and (isinstance(customer_id, bool) or not isinstance(customer_id, (str, int))):
        problems.append(Problem(ID_FIELD, f"must be a string or an integer, not {json_type(customer_id)}"))
    customer: Customer = {}
    for name, parse in _PARSERS.items():
        value = fields.get(name, _MISSING)
        if value is _MISSING:
            problems.append(Problem(name, missing_message(name, fields)))
            continue
        try:
            customer[name] = parse(value)
        except FieldError as error:
            problems.append(Problem(name, str(error), allowed=error.allowed))
    if problems:
        raise InvalidCustomer(problems)
    return customer, customer_id  # type: ignore[return-value]


# Requests repeat a handful of spellings: remembering how each was cleaned keeps the per-request
# cost to dictionary look-ups. The bounds stop a client from growing them without limit.
_MEMO_LIMIT = 512
_MISSING = object()
_NAMES: dict[str, str] = {}


def _remember_name(key: str) -> str:
    name = normalise(key)
    if len(_NAMES) < _MEMO_LIMIT:
        _NAMES[key] = name
    return name


def _category_parser(allowed: tuple[str, ...] | tuple[int, ...]) -> Callable[[object], str | int]:
    spellings: dict[str, str | int] = {}
    integers = frozenset(value for value in allowed if isinstance(value, int))

    def parse(value: object) -> str | int:
        # Exact types: True == 1 and hashes like it, but a boolean is not a valid flag.
        if value.__class__ is str:
            cleaned = spellings.get(value)  # type: ignore[arg-type]
            if cleaned is None:
                cleaned = parse_category(value, allowed)
                if len(spellings) < _MEMO_LIMIT:
                    spellings[value] = cleaned  # type: ignore[index]
            return cleaned
        if value.__class__ is int and value in integers:
            return value  # type: ignore[return-value]
        return parse_category(value, allowed)

    return parse


def _number_parser(blank_as_zero: bool) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if (value.__class__ is float or value.__class__ is int) and 0 <= value <= sys.float_info.max:  # type: ignore[operator]
            return float(value)  # type: ignore[arg-type]
        return parse_number(value, blank_as_zero=blank_as_zero)

    return parse


_PARSERS: dict[str, Callable[[object], Value]] = {
    **{name: _category_parser(allowed) for name, allowed in CATEGORICAL.items()},
    **{name: _number_parser(name in BLANK_AS_ZERO) for name in NUMERICAL},
}


def parse_value(name: str, value: object) -> Value:
    """Feature ``name``'s cleaned value, or :class:`FieldError`: one field of :func:`clean_record`."""
    return _PARSERS[name](value)


def missing_message(name: str, given: Iterable[str]) -> str:
    """Why a record lacks ``name``, with a hint when one of the ``given`` names looks like a misspelling of it."""
    unknown = [key for key in given if key not in _FEATURE_SET and key != ID_FIELD]
    close = difflib.get_close_matches(name, unknown, n=1, cutoff=0.8)
    hint = f" (is {close[0]!r} a misspelling of it?)" if close else ""
    return f"is required{hint}"


def parse_target(value: object) -> int:
    """The churn label: 1 for ``yes``, 0 for ``no``, in any spelling the cleaning rule allows."""
    cleaned = normalise(value) if isinstance(value, str) else None
    if cleaned not in ("yes", "no"):
        raise FieldError(f"must be 'yes' or 'no', not {value!r}", ("no", "yes"))
    return int(cleaned == "yes")


def feature_names() -> list[str]:
    """The columns a DictVectorizer fitted on cleaned records has, in its (sorted) order."""
    names = [
        name if isinstance(value, int) else f"{name}={value}"
        for name, values in CATEGORICAL.items()
        for value in values
    ]
    return sorted({*names, *NUMERICAL})


def schema_document() -> dict[str, object]:
    """The schema as plain JSON data, for metadata files and the API."""
    return {
        "categorical": {name: list(values) for name, values in CATEGORICAL.items()},
        "numerical": list(NUMERICAL),
        "id_field": ID_FIELD,
        "target": TARGET,
    }

"""The feature schema and the cleaning rule: the one definition training and serving share.

The rule is the course's: names and text values are lower-cased with spaces turned into ``_``,
``totalcharges`` is numeric with blanks as 0, and ``churn`` is 1 for ``yes``. It is applied to one
record at a time, so a CSV row and a JSON request go through exactly the same code, whatever
dtype pandas gives a column.

Only ASCII is folded: ``K`` (the Kelvin sign) is not ``k``, and numbers in strings are written in
ASCII digits, as JSON writes them. A record's errors stay small whatever it holds: at most one
problem per field, at most :data:`HINTS` misspelling hints, and values quoted to :data:`ECHO_CHARS`
characters. Finding the hints costs at most :data:`HINT_COMPARISONS` string comparisons per record.
"""

from __future__ import annotations

import difflib
import math
import string
import sys
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from operator import itemgetter

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
_KNOWN_NAMES = frozenset({*FEATURES, ID_FIELD})
# Customers with no bill yet have a blank total in the Telco export.
BLANK_AS_ZERO = frozenset({"totalcharges"})

Value = str | int | float
Customer = dict[str, Value]
# A customer's features in schema order (FEATURES), None for one it lacks: what the prediction log keeps.
FeatureValues = tuple[Value | None, ...]

# How much of a value an error message quotes: a megabyte of text must not come back in the error twice.
ECHO_CHARS = 40
_ECHO_LIMIT = 10**ECHO_CHARS

# The hints for misspelt field names: at most HINTS per record, found among the first HINT_KEYS unknown
# names of a length within HINT_LENGTH_SLACK of the field's, in at most HINT_COMPARISONS difflib ratios.
# difflib costs microseconds per pair, and a 1 MiB body holds 50,000 names: the work must not grow with them.
HINTS = 3
HINT_KEYS = 100
HINT_LENGTH_SLACK = 3
HINT_COMPARISONS = 5
HINT_CUTOFF = 0.8

_NEAREST_FIRST = sorted(range(-HINT_LENGTH_SLACK, HINT_LENGTH_SLACK + 1), key=abs)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class FieldError(ValueError):
    """Why one value is not acceptable for its field."""

    def __init__(self, message: str, allowed: tuple[str | int, ...] | None = None) -> None:
        super().__init__(message)
        self.allowed = allowed


def normalise(text: str) -> str:
    """The cleaning rule for names and text values: ASCII lower case, spaces to ``_``."""
    # str.lower() folds look-alikes such as the Kelvin sign onto ASCII letters; translate() folds A-Z only.
    lowered = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    return lowered.replace(" ", "_")


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
    # The service's JSON parser leaves the objects inside a record as tuples of their (key, value) pairs.
    if isinstance(value, (Mapping, tuple)):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def parse_number(value: object, *, blank_as_zero: bool = False) -> float:
    """A finite, non-negative number from a JSON number or a numeric string.

    A string holds ASCII decimal digits, with an optional sign, point and exponent, and spaces around.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FieldError(f"must be a number, not {json_type(value)}")
    if isinstance(value, str):
        number = _decimal(value)
        if number is None:
            if value.strip(string.whitespace):
                raise FieldError(f"must be a number, not {describe(value)}")
            if blank_as_zero:
                return 0.0
            raise FieldError("must be a number, not a blank string")
    else:
        try:
            number = float(value)
        except OverflowError:
            raise FieldError("must be a finite number") from None
    if not math.isfinite(number):
        raise FieldError("must be a finite number")
    if number < 0:
        raise FieldError(f"must not be negative, got {describe(value)}")
    return number


def _decimal(text: str) -> float | None:
    # Within ASCII, float() takes decimal numbers, nan and inf (which the caller refuses), and ``_`` between
    # digits; beyond ASCII, it takes the digits of every script (``"٣"`` is 3).
    if text.isascii() and "_" not in text:
        try:
            return float(text)
        except ValueError:
            return None
    return None


def describe(value: object) -> str:
    """``value`` as an error message quotes it: scalars as written, cut to :data:`ECHO_CHARS`; containers by type."""
    if isinstance(value, str):
        if len(value) > ECHO_CHARS:
            return f"{value[:ECHO_CHARS]!r}… ({len(value)} characters)"
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool):
        # repr() of an integer past 4300 digits raises rather than returns.
        return repr(value) if -_ECHO_LIMIT < value < _ECHO_LIMIT else f"a number of more than {ECHO_CHARS} digits"
    if isinstance(value, float):
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


def clean_record(raw: Mapping[str, object], *, hints: bool = True) -> tuple[Customer, str | int | None]:
    """:func:`clean_customer`, plus the customer id the record carries (``None`` if it has none).

    The problems are at most one per field: a field given in several spellings is reported as such,
    and its values are not judged. ``hints=False`` spares the misspelling hints, the costly part of
    a refusal, for callers that bound the hints of a whole batch.
    """
    customer, customer_id, problems = judge_record(raw, hints=hints)
    if problems:
        raise InvalidCustomer(problems)
    return customer, customer_id


_IN_SCHEMA_ORDER = itemgetter(*FEATURES)


def feature_values(customer: Mapping[str, Value]) -> FeatureValues:
    """``customer``'s features in schema order, None for a missing one: the log holds these, smaller than the dict."""
    try:
        values: FeatureValues = _IN_SCHEMA_ORDER(customer)
    except KeyError:
        return tuple(customer.get(name) for name in FEATURES)
    return values


def judge_record(raw: Mapping[str, object], *, hints: bool = True) -> tuple[Customer, str | int | None, list[Problem]]:
    """:func:`clean_record` without raising: the customer, its id, and the problems that refuse it (none if clean).

    For callers that judge records by the thousand, as a batch does: an exception for each refused one
    would carry a summary that no one reads.
    """
    fields: dict[str, object] = {}
    # Other keys are ignored, but the first few may be misspellings that the problems point out.
    unknown: list[str] = []
    # A field given more than once: its second spelling, and how many times it is given.
    repeated: dict[str, tuple[str, int]] = {}
    for key, value in raw.items():
        name = _NAMES.get(key)
        if name is None:
            name = normalise(key)
            if name not in _KNOWN_NAMES:
                if len(unknown) < HINT_KEYS:
                    unknown.append(name)
                continue
            if len(_NAMES) < _MEMO_LIMIT:
                _NAMES[key] = name
        if name in fields:
            second, times = repeated.get(name, (key, 1))
            repeated[name] = (second, times + 1)
        fields[name] = value

    problems: list[Problem] = []
    customer_id = fields.get(ID_FIELD)
    if customer_id is not None and (isinstance(customer_id, bool) or not isinstance(customer_id, (str, int))):
        problems.append(Problem(ID_FIELD, f"must be a string or an integer, not {json_type(customer_id)}"))
    customer: Customer = {}
    hinter: _Hints | None = None
    for name, parse in _PARSERS.items():
        value = fields.get(name, _MISSING)
        if value is _MISSING:
            hinter = hinter or _Hints(unknown if hints else ())
            problems.append(Problem(name, hinter.missing_message(name)))
            continue
        try:
            customer[name] = parse(value)
        except FieldError as error:
            problems.append(Problem(name, str(error), allowed=error.allowed))
    if repeated:
        given = [Problem(name, _repeated_message(*spelling)) for name, spelling in repeated.items()]
        problems = given + [problem for problem in problems if problem.field not in repeated]
    return customer, customer_id, problems  # type: ignore[return-value]


def _repeated_message(second: str, times: int) -> str:
    count = "twice" if times == 2 else f"{times} times"
    return f"is given {count} (the second time as {second!r})"


# Requests repeat a handful of spellings: remembering how each was cleaned keeps the per-request
# cost to dictionary look-ups. Only spellings of the schema's names and values are kept (other keys
# are as many as clients care to invent), and the bounds stop a client from growing them without limit.
_MEMO_LIMIT = 512
_MISSING = object()
_NAMES: dict[str, str] = {}


def _category_parser(allowed: tuple[str, ...] | tuple[int, ...]) -> Callable[[object], str | int]:
    spellings: dict[str, str | int] = {}
    integers = frozenset(value for value in allowed if isinstance(value, int))

    def parse(value: object) -> str | int:
        # Exact types: True == 1 and hashes like it, but a boolean is not a valid flag.
        if type(value) is str:
            cleaned = spellings.get(value)
            if cleaned is None:
                cleaned = parse_category(value, allowed)
                if len(spellings) < _MEMO_LIMIT:
                    spellings[value] = cleaned
            return cleaned
        if type(value) is int and value in integers:
            return value
        return parse_category(value, allowed)

    return parse


def _number_parser(blank_as_zero: bool) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if (type(value) is float or type(value) is int) and 0 <= value <= sys.float_info.max:
            return float(value)
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
    """Why a record lacks ``name``, with a hint when one of the (distinct) ``given`` names looks like a misspelling."""
    return _Hints(islice((key for key in given if key not in _KNOWN_NAMES), HINT_KEYS)).missing_message(name)


class _Hints:
    """Misspelling hints for the missing fields of one record, within the bounds of the module's docstring."""

    def __init__(self, unknown: Iterable[str]) -> None:
        self.by_length: dict[int, list[str]] = {}
        for key in unknown:
            self.by_length.setdefault(len(key), []).append(key)
        self.comparisons = HINT_COMPARISONS
        # Without unknown names there is nothing to compare: each missing field is simply required.
        self.hints = HINTS if self.by_length else 0

    def missing_message(self, name: str) -> str:
        """``is required``, with the closest unknown name if one is close enough and the budget allows."""
        close = self._closest(name) if self.hints and self.comparisons else None
        if close is None:
            return "is required"
        self.hints -= 1
        return f"is required (is {close!r} a misspelling of it?)"

    def _closest(self, name: str) -> str | None:
        size = len(name)
        # difflib's ratio is 2 * matching characters / both lengths: under the cutoff, whatever matches, once
        # the lengths differ too much. Names nearest in length go first, as the likeliest misspellings.
        candidates = [
            key
            for offset in _NEAREST_FIRST
            if 2 * min(size, size + offset) >= HINT_CUTOFF * (2 * size + offset)
            for key in self.by_length.get(size + offset, ())
        ][: self.comparisons]
        if not candidates:
            return None
        self.comparisons -= len(candidates)
        matcher = difflib.SequenceMatcher(b=name)
        ratios = []
        for key in candidates:
            matcher.set_seq1(key)
            ratios.append(matcher.ratio())
        best = max(range(len(candidates)), key=ratios.__getitem__)
        return candidates[best] if ratios[best] >= HINT_CUTOFF else None


def parse_target(value: object) -> int:
    """The churn label: 1 for ``yes``, 0 for ``no``, in any spelling the cleaning rule allows."""
    cleaned = normalise(value) if isinstance(value, str) else None
    if cleaned not in ("yes", "no"):
        raise FieldError(f"must be 'yes' or 'no', not {describe(value)}", ("no", "yes"))
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

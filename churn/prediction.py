"""The predict step, apart from any web framework: a request body in, scored customers and the response out.

The web layer adapts it to HTTP (churn.endpoints); everything it refuses is a domain error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from churn import schema
from churn.errors import InvalidCustomer, MalformedInput, Problem, TooLarge
from churn.explain import Explainer
from churn.model import ChurnModel


@dataclass(frozen=True)
class Request:
    """Cleaned customers, the ids they were sent with, and whether a batch (array) was sent."""

    customers: list[schema.Customer]
    ids: list[object]
    batch: bool


@dataclass(frozen=True)
class Scored:
    """A scored request: its customers, their probabilities, and the response records in request order."""

    request: Request
    probabilities: list[float]
    results: list[dict[str, object]]

    def response(self) -> bytes:
        """The JSON response: one result for an object, an array for a batch; compact, with a newline."""
        document = self.results if self.request.batch else self.results[0]
        return json.dumps(document, separators=(",", ":")).encode() + b"\n"


# Misspelling hints cost a few comparisons a field: only the first records that fail get them.
HINTED_RECORDS = 10
# The problems a refused batch lists; the detail counts them all.
LISTED_PROBLEMS = 100
READ_FIELDS = frozenset({*schema.FEATURES, schema.ID_FIELD})


class _Repeated(dict[str, object]):
    """A JSON object that named some keys more than once: the last value would silently win."""

    repeated: list[str]


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document = dict(pairs)
    if len(document) == len(pairs):
        return document
    seen: set[str] = set()
    repeated = _Repeated(document)
    repeated.repeated = [key for key, _ in pairs if key in seen or seen.add(key)]  # type: ignore[func-returns-value]
    return repeated


class _Constant(ValueError):
    """``NaN`` or ``Infinity``, which Python's parser accepts and JSON does not have."""


def _reject_constant(name: str) -> float:
    raise _Constant(f"{name} is not valid JSON")


def parse_json(body: bytes) -> object:
    """The JSON document in ``body``; :class:`MalformedInput` for anything else.

    Python's parser accepts ``NaN`` and ``Infinity``, and guesses UTF-16 or UTF-32 from the
    bytes; JSON is UTF-8 (RFC 8259) and has neither constant, so those are refused here.
    """
    try:
        return json.loads(body.decode("utf-8-sig"), parse_constant=_reject_constant, object_pairs_hook=_object)
    except json.JSONDecodeError as error:
        raise MalformedInput(
            f"The body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}."
        ) from None
    except UnicodeDecodeError:
        raise MalformedInput("The body is not valid JSON: it is not UTF-8 text.") from None
    except RecursionError:
        raise MalformedInput("The body is not valid JSON for this service: it is nested too deeply.") from None
    except _Constant as error:
        raise MalformedInput(f"The body is not valid JSON: {error}.") from None
    except ValueError:
        # The one other ValueError the parser raises: an integer longer than Python converts.
        digits = sys.get_int_max_str_digits()
        raise MalformedInput(
            f"The body is not valid JSON for this service: a number has more than {digits} digits."
        ) from None


def parse_customers(document: object, max_batch_size: int) -> Request:
    """One customer object, or an array of them, cleaned by the schema's rule.

    A batch is all or nothing: every problem of every record is reported, with its index.
    """
    if isinstance(document, Mapping):
        customer, customer_id = _clean(document)
        return Request([customer], [customer_id], batch=False)
    if not isinstance(document, list):
        raise MalformedInput(
            f"The body must be a customer object or an array of them, not {schema.json_type(document)}."
        )
    if not document:
        raise MalformedInput("The batch is empty: send at least one customer.")
    if len(document) > max_batch_size:
        raise TooLarge.batch(len(document), max_batch_size)
    customers: list[schema.Customer] = []
    ids: list[object] = []
    problems: list[Problem] = []
    failed = 0
    for index, record in enumerate(document):
        if not isinstance(record, Mapping):
            problems.append(Problem(None, f"must be a customer object, not {schema.json_type(record)}", index))
            continue
        try:
            customer, customer_id = _clean(record, hints=failed < HINTED_RECORDS)
        except InvalidCustomer as error:
            failed += 1
            problems.extend(problem.at(index) for problem in error.problems)
            continue
        customers.append(customer)
        ids.append(customer_id)
    if problems:
        raise InvalidCustomer(problems, LISTED_PROBLEMS)
    return Request(customers, ids, batch=True)


def _clean(record: Mapping[str, object], hints: bool = True) -> tuple[schema.Customer, object]:
    if isinstance(record, _Repeated):
        # Keys that are not read may repeat (the last one is ignored like the first); a field may not.
        read = [name for name in dict.fromkeys(map(schema.normalise, record.repeated)) if name in READ_FIELDS]
        if read:
            raise InvalidCustomer([Problem(name, "is given twice") for name in read])
    return schema.clean_record(record, hints=hints)


def score(
    model: ChurnModel, body: bytes, threshold: float, max_batch_size: int, explainer: Explainer | None = None
) -> Scored:
    """Parse, validate and score a ``/predict`` body, each result explained when ``explainer`` is given.

    Raises a domain error for a body it refuses.
    """
    request = parse_customers(parse_json(body), max_batch_size)
    probabilities = model.predict_proba(request.customers)
    results = predictions(probabilities, request.ids, threshold)
    if explainer is not None:
        for result, customer, probability in zip(results, request.customers, probabilities, strict=True):
            result.update(explainer.explain(customer, probability))
    return Scored(request, probabilities, results)


def predictions(probabilities: list[float], ids: list[object], threshold: float) -> list[dict[str, object]]:
    """The response records: the course's two keys, plus the id when one was sent."""
    results = []
    for probability, customer_id in zip(probabilities, ids, strict=True):
        result: dict[str, object] = {"churn_probability": probability, "churn": probability >= threshold}
        if customer_id is not None:
            result[schema.ID_FIELD] = customer_id
        results.append(result)
    return results

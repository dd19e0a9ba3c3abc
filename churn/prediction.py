"""Request bodies to cleaned customers: pure functions, apart from the web layer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from churn import schema
from churn.errors import BadRequest, InvalidCustomer, PayloadTooLarge, Problem
from churn.model import ChurnModel


@dataclass(frozen=True)
class Request:
    """Cleaned customers, the ids they were sent with, and whether a batch (array) was sent."""

    customers: list[schema.Customer]
    ids: list[object]
    batch: bool


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> object:
    """The JSON document in ``body``; :class:`BadRequest` for anything else.

    Python's parser accepts ``NaN`` and ``Infinity``, and guesses UTF-16 or UTF-32 from the
    bytes; JSON is UTF-8 (RFC 8259) and has neither constant, so those are refused here.
    """
    try:
        return json.loads(body.decode("utf-8-sig"), parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise BadRequest(
            f"The body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}."
        ) from None
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid JSON: it is not UTF-8 text.") from None
    except RecursionError:
        raise BadRequest("The body is not valid JSON for this service: it is nested too deeply.") from None
    except ValueError as error:
        raise BadRequest(f"The body is not valid JSON: {error}.") from None


def parse_customers(document: object, max_batch_size: int) -> Request:
    """One customer object, or an array of them, cleaned by the schema's rule.

    A batch is all or nothing: every problem of every record is reported, with its index.
    """
    if isinstance(document, Mapping):
        customer, customer_id = schema.clean_record(document)
        return Request([customer], [customer_id], batch=False)
    if not isinstance(document, list):
        raise BadRequest(f"The body must be a customer object or an array of them, not {schema.json_type(document)}.")
    if not document:
        raise BadRequest("The batch is empty: send at least one customer.")
    if len(document) > max_batch_size:
        raise PayloadTooLarge(
            f"The batch has {len(document)} customers; the limit is {max_batch_size}. Split it into smaller requests."
        )
    customers: list[schema.Customer] = []
    ids: list[object] = []
    problems: list[Problem] = []
    for index, record in enumerate(document):
        if not isinstance(record, Mapping):
            problems.append(Problem(None, f"must be a customer object, not {schema.json_type(record)}", index))
            continue
        try:
            customer, customer_id = schema.clean_record(record)
        except InvalidCustomer as error:
            problems.extend(problem.at(index) for problem in error.problems)
            continue
        customers.append(customer)
        ids.append(customer_id)
    if problems:
        raise InvalidCustomer(problems)
    return Request(customers, ids, batch=True)


def answer(model: ChurnModel, body: bytes, threshold: float, max_batch_size: int) -> bytes:
    """The JSON response to a ``/predict`` body: one result for an object, an array for a batch.

    Compact, as Flask's ``jsonify`` writes it; raises :class:`ServiceError` for a body it refuses.
    """
    parsed = parse_customers(parse_json(body), max_batch_size)
    results = predictions(model.predict_proba(parsed.customers), parsed.ids, threshold)
    return json.dumps(results if parsed.batch else results[0], separators=(",", ":")).encode() + b"\n"


def predictions(probabilities: list[float], ids: list[object], threshold: float) -> list[dict[str, object]]:
    """The response records: the course's two keys, plus the id when one was sent."""
    results = []
    for probability, customer_id in zip(probabilities, ids, strict=True):
        result: dict[str, object] = {"churn_probability": probability, "churn": probability >= threshold}
        if customer_id is not None:
            result[schema.ID_FIELD] = customer_id
        results.append(result)
    return results

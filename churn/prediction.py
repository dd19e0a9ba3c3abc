"""The predict step, apart from any web framework: a request body in, scored customers and the response out.

The web layer adapts it to HTTP (churn.endpoints); everything it refuses is a domain error.
"""

from __future__ import annotations

import gc
import json
import re
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

from churn import json_replies, schema
from churn.errors import InvalidCustomer, MalformedInput, Problem, ServiceError, TooLarge
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
        return json_replies.encode(document)


# Misspelling hints cost a few comparisons a field: only the first records that fail get them.
HINTED_RECORDS = 10
# The problems a refused batch lists; the detail counts them all.
LISTED_PROBLEMS = 100
# A customer has 20 fields: a record with more keys than this is not one, and reading them all is work for nothing.
MAX_KEYS = 1000
READ_FIELDS = frozenset({*schema.FEATURES, schema.ID_FIELD})


class _Repeated(dict[str, object]):
    """A JSON object that named some keys more than once, with all its pairs: the last value would silently win."""

    pairs: tuple[tuple[str, object], ...]


class OversizedRecord(dict[str, object]):
    """A JSON object with more keys than a record may have (:data:`MAX_KEYS`): counted, not read, so empty."""

    def __init__(self, keys: int) -> None:
        super().__init__()
        self.count = keys

    def problem(self, noun: str) -> Problem:
        """What is wrong with it, for the error's list, saying what a record is (``customer``, ``outcome``)."""
        return Problem(None, f"has {self.count} keys; {_a(noun)} has at most {MAX_KEYS}")


class _Constant(ValueError):
    """``NaN`` or ``Infinity``, which Python's parser accepts and JSON does not have."""


def _reject_constant(name: str) -> float:
    raise _Constant(f"{name} is not valid JSON")


# The parser makes each object a tuple of its (key, value) pairs, which C does without calling back into
# Python; a hook making dicts cost a call per object, and 1 MiB of ``{}`` is 350,000 of them. Only records
# (the document, or the elements of an array) become dicts: that is where repeated keys are looked for.
_DECODER = json.JSONDecoder(object_pairs_hook=tuple, parse_constant=_reject_constant)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# What follows an element of an array: a comma before the next one, or the closing bracket.
_SEPARATOR = re.compile(r"[ \t\n\r]*(?:(?P<comma>,)[ \t\n\r]*|\])")


def parse_json(body: bytes, max_batch_size: int | None = None, noun: str = "customer") -> object:
    """The JSON document in ``body``; :class:`MalformedInput` for anything else.

    Python's parser accepts ``NaN`` and ``Infinity``, and guesses UTF-16 or UTF-32 from the
    bytes; JSON is UTF-8 (RFC 8259) and has neither constant, so those are refused here.

    Records (the document, or each element of an array) are dicts; objects inside them stay tuples of
    their (key, value) pairs, which :func:`schema.json_type` names as objects and nothing else reads.
    With ``max_batch_size``, an array is refused with :class:`TooLarge` as soon as it has one element
    more, before the rest of the body is parsed, naming what its records are (``noun``).
    """
    with _CollectorPause():
        try:
            return _decode(body.decode("utf-8-sig"), max_batch_size, noun)
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


class _CollectorPause:
    """The cyclic garbage collector off inside; only the pause that turned it off turns it on again.

    It runs every 700 new containers and walks the survivors again as they age: a body of a million
    small arrays cost ten times its parse. A parsed body has no cycles, so nothing is missed. A
    refusal's traceback holds the frames that hold the body: they are cleared before the collector resumes.
    """

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        refusal: BaseException | None = error if isinstance(error, ServiceError) else None
        while refusal is not None:
            traceback.clear_frames(refusal.__traceback__)
            refusal = refusal.__context__
        if self.enabled:
            gc.enable()


def _decode(text: str, max_batch_size: int | None, noun: str) -> object:
    # json.loads, records made dicts, and an array at the top read element by element when its size is limited.
    start = _skip_whitespace(text, 0)
    document: object
    if max_batch_size is not None and text.startswith("[", start):
        document, end = _array(text, start + 1, max_batch_size, noun)
    else:
        parsed, end = _DECODER.raw_decode(text, start)
        document = _records(parsed)
    end = _skip_whitespace(text, end)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return document


def _array(text: str, start: int, limit: int, noun: str) -> tuple[list[object], int]:
    """The records of the array opened before ``start`` and where it ends; :class:`TooLarge` past ``limit``."""
    # The errors are those json.loads gives for the same text.
    elements: list[object] = []
    end = _skip_whitespace(text, start)
    if text.startswith("]", end):
        return elements, end + 1
    while len(elements) <= limit:
        element, end = _DECODER.raw_decode(text, end)
        elements.append(_record(element) if type(element) is tuple else element)
        separator = _SEPARATOR.match(text, end)
        if separator is None:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, _skip_whitespace(text, end))
        end = separator.end()
        if separator["comma"] is None:
            return elements, end
    raise TooLarge.batch_over(limit, noun)


def _skip_whitespace(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]  # it matches the empty string


def _records(document: object) -> object:
    if type(document) is tuple:
        return _record(document)
    if type(document) is list:
        return [_record(element) if type(element) is tuple else element for element in document]
    return document


def _record(pairs: tuple[tuple[str, object], ...]) -> dict[str, object]:
    if len(pairs) > MAX_KEYS:
        return OversizedRecord(len(pairs))
    record = dict(pairs)
    if len(record) == len(pairs):
        return record
    repeated = _Repeated(record)
    repeated.pairs = pairs
    return repeated


def batch_records(document: object, max_batch_size: int, noun: str) -> list[object]:
    """The records of a body that is not one record (an object): it must be an array of 1 to ``max_batch_size``.

    Anything else is refused as the API refuses it, naming what a record is (``noun``: ``customer``, ``outcome``).
    """
    if not isinstance(document, list):
        raise MalformedInput(
            f"The body must be {_a(noun)} object or an array of them, not {schema.json_type(document)}."
        )
    if not document:
        raise MalformedInput(f"The batch is empty: send at least one {noun}.")
    if len(document) > max_batch_size:
        raise TooLarge.batch(len(document), max_batch_size, noun)
    return document


def _a(noun: str) -> str:
    """``noun`` with its indefinite article: a customer, an outcome."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def parse_customers(document: object, max_batch_size: int) -> Request:
    """One customer object, or an array of them, cleaned by the schema's rule.

    A batch is all or nothing: every problem of every record is reported, with its index.
    """
    if isinstance(document, Mapping):
        customer, customer_id, refused = _judge(document)
        if refused:
            raise InvalidCustomer(refused)
        return Request([customer], [customer_id], batch=False)
    batch = batch_records(document, max_batch_size, "customer")
    customers: list[schema.Customer] = []
    ids: list[object] = []
    problems: list[Problem] = []
    failed = 0
    for index, record in enumerate(batch):
        if not isinstance(record, Mapping):
            problems.append(Problem(None, f"must be a customer object, not {schema.json_type(record)}", index))
            continue
        customer, customer_id, refused = _judge(record, hints=failed < HINTED_RECORDS)
        if refused:
            failed += 1
            # Past the problems listed only their number is reported: those are not located.
            listed = len(problems) < LISTED_PROBLEMS
            problems.extend((problem.at(index) for problem in refused) if listed else refused)
            continue
        customers.append(customer)
        ids.append(customer_id)
    if problems:
        raise InvalidCustomer(problems, LISTED_PROBLEMS)
    return Request(customers, ids, batch=True)


def _judge(record: Mapping[str, object], hints: bool = True) -> tuple[schema.Customer, object, list[Problem]]:
    """:func:`schema.judge_record`, after the checks of what the parser saw: how many keys, and which repeated."""
    if isinstance(record, OversizedRecord):
        return {}, None, [record.problem("customer")]
    if isinstance(record, _Repeated):
        # Keys that are not read may repeat (the last one is ignored like the first); a field may not.
        twice = _given_twice(record)
        if twice:
            return {}, None, [Problem(name, "is given twice") for name in twice]
    return schema.judge_record(record, hints=hints)


def _given_twice(record: _Repeated) -> list[str]:
    """The fields ``record`` names more than once under the same key, in the order of their second mention."""
    # A repeated object may have a million pairs: only the keys of fields are followed through them.
    fields = {key: name for key in record if (name := schema.normalise(key)) in READ_FIELDS}
    seen: set[str] = set()
    twice: dict[str, None] = {}
    if fields:
        for key, _ in record.pairs:
            if key in fields:
                if key in seen:
                    twice[fields[key]] = None
                seen.add(key)
    return list(twice)


def score(
    model: ChurnModel, body: bytes, threshold: float, max_batch_size: int, explainer: Explainer | None = None
) -> Scored:
    """Parse, validate and score a ``/predict`` body, each result explained when ``explainer`` is given.

    Raises a domain error for a body it refuses.
    """
    with _CollectorPause():
        request = parse_customers(parse_json(body, max_batch_size), max_batch_size)
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

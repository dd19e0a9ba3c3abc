"""What the costliest ``/predict`` bodies within the size limit cost the service: ``python -m benchmarks.bodies``.

Each shape is what an attacker would send to make a request dear: as many keys, objects, numbers or
escapes as fit just under ``CHURN_MAX_REQUEST_BYTES``. Each is sent to the service's WSGI application
in this process (``create_app`` on the configured model, its pipeline called with a prepared environ,
so no test client or socket is counted), and its CPU time is set beside that of a plain ``json.loads``
of the same bytes, the floor for anything that reads the whole body: as Python runs it, and with the
garbage collector off, which is how the service parses.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import itertools
import json
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from churn import schema
from churn.app import create_app
from churn.arguments import integer_at_least
from churn.examples import SAMPLE_CUSTOMER
from churn.model import load_model
from churn.settings import Settings
from churn.training import DATA_FILE

ROUNDS = 5
GOAL_MS = 100.0
# Deep enough to cost, shallow enough for the parser, which gives up near Python's recursion limit.
DEPTH = 500

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Shape:
    """One body, and the query string it is sent with."""

    name: str
    body: bytes
    query: str = ""


def packed(parts: Iterable[bytes], limit: int, head: bytes = b"[", tail: bytes = b"]") -> bytes:
    """``head``, as many of ``parts`` as fit within ``limit`` bytes with commas between, and ``tail``."""
    taken, size = [], len(head) + len(tail) - 1
    for part in parts:
        size += len(part) + 1
        if size > limit:
            break
        taken.append(part)
    return head + b",".join(taken) + tail


def near_misses() -> Iterator[str]:
    """Distinct names, each a field's name with one character changed: every one a plausible misspelling."""
    for number in itertools.count():
        field = schema.FEATURES[number % len(schema.FEATURES)]
        at = number // len(schema.FEATURES) % len(field)
        yield f"{field[:at]}{number:x}{field[at + 1 :]}"


def spellings() -> Iterator[str]:
    """The fields' names in every mix of upper and lower case of their first 12 letters, over and over."""
    for field in itertools.cycle(schema.FEATURES):
        for cases in itertools.product(*((letter.lower(), letter.upper()) for letter in field[:12])):
            yield "".join(cases) + field[12:]


def members(keys: Iterable[str], value: bytes = b"0") -> Iterator[bytes]:
    """``"key":value`` for each key, written as it is (no escaping)."""
    return (b'"' + key.encode() + b'":' + value for key in keys)


def numbered(prefix: str = "k") -> Iterator[str]:
    """``k0``, ``k1``, ...: distinct names that are nothing like a field."""
    return (f"{prefix}{number:x}" for number in itertools.count())


def telco_rows(count: int) -> list[bytes]:
    """The first ``count`` customers of the Telco CSV as a client sends them: its spelling, text values, ids."""
    frame = pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False, nrows=count)
    rows = frame.drop(columns="Churn").to_dict(orient="records")
    return [json.dumps(row, separators=(",", ":")).encode() for row in rows]


def shapes(limit: int, batch: int) -> list[Shape]:
    """The costliest shapes we know of, each at most ``limit`` bytes; batches of at most ``batch`` records."""

    def record(parts: Iterable[bytes], size: int = limit) -> bytes:
        return packed(parts, size, b"{", b"}")

    def element(unit: bytes) -> bytes:
        # A batch of one element, an array of ``unit``: refused, but only once all of it is parsed.
        return packed(itertools.repeat(unit), limit, b"[[", b"]]")

    valid = json.dumps(SAMPLE_CUSTOMER, separators=(",", ":")).encode()[:-1] + b',"note":'

    def noted(unit: bytes) -> bytes:
        # The course's customer, valid, with a key it does not read whose array fills the body.
        return valid + packed(itertools.repeat(unit), limit - len(valid) - 1) + b"}"

    def filled(name: str, letter: str) -> bytes:
        return json.dumps({**SAMPLE_CUSTOMER, name: letter * (limit - 800)}).encode()

    per_record = limit // batch - 1
    escapes = (limit - len(valid) - 3) // len(b"\\u00e9")
    invalid = json.dumps(dict.fromkeys(schema.FEATURES, "x" * 80)).encode()
    deep_object = b'{"a":' * DEPTH + b"0" + b"}" * DEPTH
    real = packed(telco_rows(batch), limit)
    return [
        # Keys: misspelt, long, escaped, every spelling of the fields, repeated.
        Shape("object of near-miss keys", record(members(near_misses()))),
        Shape("object of 2,000-character near-misses", record(members(k + "x" * 2000 for k in near_misses()))),
        Shape("object of 8 keys of 256 KiB", record(members(k * ((2**18 - 16) // len(k)) for k in schema.FEATURES))),
        Shape(
            "object of near-misses in \\u escapes", record(members(k.replace("e", "\\u0065") for k in near_misses()))
        ),
        Shape("object of the fields in every case", record(members(spellings()))),
        Shape("object of one key repeated", record(itertools.repeat(b'"a":0'))),
        Shape("object of a field repeated", record(itertools.repeat(b'"tenure":0'))),
        Shape("object of every key twice", record(members(k for k in numbered() for _ in range(2)))),
        Shape("object of empty objects", record(members(numbered(), b"{}"))),
        Shape(f"object of objects {DEPTH} deep", record(members(numbered(), deep_object))),
        # Batches at the limit, every record refused.
        Shape(
            f"batch of {batch} objects of near-misses",
            packed((record(members(near_misses()), per_record) for _ in range(batch)), limit),
        ),
        Shape(
            f"batch of {batch} objects of a field repeated",
            packed(itertools.repeat(record(itertools.repeat(b'"tenure":0'), per_record), batch), limit),
        ),
        Shape(f"batch of {batch} records, every field invalid", packed(itertools.repeat(invalid, batch), limit)),
        # As many values as fit: past the batch limit, then inside one element or one ignored key.
        Shape("array of zeros", packed(itertools.repeat(b"0"), limit)),
        Shape("array of small objects", packed(itertools.repeat(b'{"a":0}'), limit)),
        Shape("zeros in one element", element(b"0")),
        Shape("floats in one element", element(b"0.5")),
        Shape("small objects in one element", element(b'{"a":0}')),
        Shape("empty objects in one element", element(b"{}")),
        Shape("small arrays in one element", element(b"[0]")),
        Shape(f"arrays {DEPTH} deep in one element", element(b"[" * DEPTH + b"]" * DEPTH)),
        Shape("4,300-digit integers in one element", element(b"9" * 4300)),
        Shape("4,000-digit floats in one element", element(b"0." + b"9" * 4000)),
        Shape("valid customer, floats in a key", noted(b"0.5")),
        Shape("valid customer, small objects in a key", noted(b'{"a":0}')),
        Shape("valid customer, small arrays in a key", noted(b"[0]")),
        # Long strings: echoed, escaped, parsed as a number.
        Shape("valid customer, an id filling the body", filled(schema.ID_FIELD, "x")),
        Shape("valid customer, a string of \\u escapes", valid + b'"' + b"\\u00e9" * escapes + b'"}'),
        Shape("a number field of digits filling the body", filled("tenure", "1")),
        # What clients send: the largest batch of real customers, as they are and explained.
        Shape(f"valid batch of {batch} Telco customers", real),
        Shape(f"valid batch of {batch} Telco customers, explained", real, "explain=true"),
    ]


def environ(shape: Shape) -> dict[str, Any]:
    """A WSGI environ for ``POST /predict`` with ``shape``'s body, as gunicorn would hand it over."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/predict",
        "QUERY_STRING": shape.query,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(shape.body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(shape.body),
        "wsgi.url_scheme": "http",
    }


def request(app: WSGIApp, shape: Shape) -> tuple[int, float]:
    """The status and the CPU seconds of one request, its response read to the end."""
    statuses: list[str] = []
    prepared = environ(shape)
    started = time.process_time()
    for _ in app(prepared, lambda status, headers, exc_info=None: statuses.append(status)):
        pass
    return int(statuses[0].split()[0]), time.process_time() - started


def parse(body: bytes, collector: bool) -> float:
    """The CPU seconds of a plain ``json.loads`` of ``body``, with the garbage collector on or off."""
    if not collector:
        gc.disable()
    started = time.process_time()
    try:
        with contextlib.suppress(ValueError):
            json.loads(body)
        return time.process_time() - started
    finally:
        gc.enable()


@dataclass(frozen=True)
class Figures:
    """One shape's status and CPU milliseconds per round: through the service, json.loads, json.loads without gc."""

    status: int
    service: list[float]
    loads: list[float]
    bare: list[float]

    def line(self, shape: Shape) -> str:
        """The shape's row of the report: medians, the service's worst round, and its ratio to the bare parse."""
        service, loads, bare = (statistics.median(times) for times in (self.service, self.loads, self.bare))
        return (
            f"  {shape.name:48} {len(shape.body):>9,}  {self.status:>6}  {service:9.1f} {max(self.service):7.1f}  "
            f"{loads:10.1f} {bare:7.1f} {service / bare:6.1f}x"
        )


def measure(app: WSGIApp, shape: Shape, rounds: int) -> Figures:
    """``rounds`` rounds of the request and the two parses, one after the other, so a busy moment hits all three."""
    status, service, loads, bare = 0, [], [], []
    for _ in range(rounds):
        status, seconds = request(app, shape)
        service.append(seconds * 1000)
        loads.append(parse(shape.body, collector=True) * 1000)
        bare.append(parse(shape.body, collector=False) * 1000)
    return Figures(status, service, loads, bare)


def body_figures(rounds: int = ROUNDS) -> str:
    """The CPU milliseconds of each shape through the service and through ``json.loads``, as text."""
    settings = Settings.from_env()
    app: WSGIApp = create_app(load_model(settings.model_path), settings).wsgi_app
    limit, batch = settings.max_request_bytes, settings.max_batch_size
    lines = [
        f"Costly bodies: POST /predict in process (WSGI), CPU ms of the whole request, median and max of {rounds} "
        "rounds,",
        f"beside json.loads of the same bytes with the garbage collector on and off (medians), and the ratio to the "
        f"latter; bodies of at most {limit:,} bytes, batches of {batch:,}",
        f"  {'shape':48} {'bytes':>9}  status  {'median ms':>9} {'max ms':>7}  {'json.loads':>10} {'gc off':>7} "
        f"{'ratio':>7}",
    ]
    worst = 0.0
    for shape in shapes(limit, batch):
        figures = measure(app, shape, rounds)
        worst = max(worst, statistics.median(figures.service))
        lines.append(figures.line(shape))
    verdict = "met" if worst <= GOAL_MS else "NOT MET"
    lines.append(f"  goal: every shape <= {GOAL_MS:g} ms of CPU (median): {verdict}; the costliest {worst:.1f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bodies", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=integer_at_least(1), default=ROUNDS, help=f"rounds per shape ({ROUNDS})")
    print(body_figures(parser.parse_args(argv).rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

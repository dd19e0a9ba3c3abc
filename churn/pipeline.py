"""The request pipeline: every rule of every endpoint in one place, run once per request, whatever the transport.

A request goes through, in order: its request id; its route; the rules (body size, content type, API
key); the endpoint; then the response headers, the metrics and the request log. Domain errors become
problem documents here and nowhere else. Paths the service does not route itself (the page, the API
docs, static files) are answered by Flask, inside the same steps.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from churn import json_replies, problems
from churn.errors import MalformedInput, ServiceError, TooLarge, UnsupportedFormat
from churn.problems import Refused

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# A caller's request id is kept when it is this: short (the log's column holds 64), printable, no spaces.
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")
# Paths Flask answers get one label each in metrics, and everything else one more: a scan must not
# create a time series per path it tries.
OTHER = "other"


@dataclass(slots=True)
class Call:
    """One request as endpoints see it, and what they tell the pipeline about it."""

    environ: dict[str, Any]
    request_id: str
    started: float
    endpoint: str = OTHER
    # Customers scored, for the request log.
    rows: int = 0

    @property
    def method(self) -> str:
        """The HTTP method."""
        return self.environ.get("REQUEST_METHOD", "GET")

    @property
    def path(self) -> str:
        """The path, without the query string."""
        return self.environ.get("PATH_INFO") or "/"

    def header(self, name: str) -> str:
        """A request header's value, or ``""``."""
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"), "")

    def media_type(self) -> str:
        """The body's declared media type, lower case, without parameters."""
        return self.environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()

    def content_length(self) -> int | None:
        """The declared body length; ``None`` for a chunked body, which declares none."""
        text = self.environ.get("CONTENT_LENGTH")
        return int(text) if text and text.isdigit() else None

    def body(self, limit: int) -> bytes:
        """The body, refused with :class:`TooLarge` when it is over ``limit`` bytes."""
        length = self.content_length()
        stream = self.environ["wsgi.input"]
        if length is not None:
            return stream.read(length) if length else b""
        if not self.environ.get("wsgi.input_terminated"):
            # Neither a length nor a server that ends the stream: nothing can be read safely.
            return b""
        # One byte past the limit tells an oversized chunked body from one exactly at it.
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise TooLarge.body(limit)
        return body

    def flag(self, name: str) -> bool:
        """Whether query parameter ``name`` is on (``?name=true``, ``1``, ``yes`` or bare ``?name``).

        A request without a query string costs one look-up.
        """
        query = self.environ.get("QUERY_STRING")
        if not query:
            return False
        values = parse_qs(query, keep_blank_values=True).get(name)
        if not values:
            return False
        if values[-1].lower() in ("", "true", "1", "yes"):
            return True
        if values[-1].lower() in ("false", "0", "no"):
            return False
        raise MalformedInput(f"The query parameter {name!r} must be true or false, not {values[-1]!r}.")


@dataclass(frozen=True, slots=True)
class Reply:
    """What an endpoint answers."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """A route the pipeline answers itself: its method, handler, and the rules it declares."""

    method: str
    handler: Callable[[Call], Reply]
    # Data endpoints need the API key when the service has keys.
    protected: bool = False
    # The media type a body must be declared as, with the error for anything else.
    accepts: tuple[str, Callable[[], UnsupportedFormat]] | None = None


Rule = Callable[[Call, Endpoint | None], None]
Observer = Callable[[Call, int, float], None]


def limit_body(max_bytes: int) -> Rule:
    """Refuse a body whose declared length is over ``max_bytes``, before reading a byte of it."""

    def rule(call: Call, endpoint: Endpoint | None) -> None:
        length = call.content_length()
        if length is not None and length > max_bytes:
            raise TooLarge.body(max_bytes, length)

    return rule


def check_media_type(call: Call, endpoint: Endpoint | None) -> None:
    """Refuse a body not declared as what the endpoint reads, or in an encoding it cannot honour."""
    if endpoint is None or endpoint.accepts is None:
        return
    if call.media_type() != endpoint.accepts[0]:
        raise endpoint.accepts[1]()
    encoding = call.header("Content-Encoding").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedFormat(f"The body is sent with Content-Encoding: {encoding}; send it uncompressed.")
    charset = _parameter(call.environ.get("CONTENT_TYPE", ""), "charset")
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UnsupportedFormat(f"The body is declared as charset={charset}; the service reads UTF-8 only.")


def _parameter(content_type: str, name: str) -> str | None:
    """A parameter of a Content-Type header value, unquoted."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None


@dataclass
class Pipeline:
    """The WSGI application: routes, rules and observers around every request."""

    endpoints: Mapping[str, Endpoint]
    fallback: WSGIApp
    rules: Sequence[Rule]
    observers: Sequence[Observer] = ()
    headers: Sequence[tuple[str, str]] = ()
    # Flask's paths, by the label metrics and logs give them.
    fallback_labels: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        started = time.perf_counter()
        given = environ.get("HTTP_X_REQUEST_ID", "")
        call = Call(environ, given if REQUEST_ID.fullmatch(given) else os.urandom(16).hex(), started)
        path = call.path
        endpoint = self.endpoints.get(path)
        if endpoint is not None:
            call.endpoint = path
        else:
            call.endpoint = self.fallback_labels.get(path.partition("/")[2].partition("/")[0], OTHER)
        try:
            if (
                endpoint is not None
                and call.method != endpoint.method
                and not (endpoint.method == "GET" and call.method == "HEAD")
            ):
                raise Refused(405, "The method is not allowed for the requested URL.", [("Allow", endpoint.method)])
            for rule in self.rules:
                rule(call, endpoint)
            if endpoint is None:
                return self._fallback(call, start_response)
            reply = endpoint.handler(call)
        except ServiceError as error:
            reply = problem_reply(error)
        except Exception:
            logger.exception("request %s: %s %s failed", call.request_id, call.method, path)
            reply = problem_reply(Refused(500, "The service failed to handle this request; the error is in its log."))
        body = b"" if call.method == "HEAD" else reply.body
        start_response(
            f"{reply.status} {HTTPStatus(reply.status).phrase}",
            [
                ("Content-Type", reply.content_type),
                ("Content-Length", str(len(reply.body))),
                ("X-Request-ID", call.request_id),
                *reply.headers,
                *self.headers,
            ],
        )
        self._observe(call, reply.status)
        return [body]

    def _fallback(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        status = 500

        def respond(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = int(status_line.split(None, 1)[0])
            return start_response(status_line, [*headers, ("X-Request-ID", call.request_id), *self.headers], exc_info)

        body = self.fallback(call.environ, respond)
        self._observe(call, status)
        return body

    def _observe(self, call: Call, status: int) -> None:
        seconds = time.perf_counter() - call.started
        for observer in self.observers:
            observer(call, status, seconds)


def problem_reply(error: ServiceError) -> Reply:
    """The problem document for ``error``, as a reply."""
    document = problems.of(error)
    headers = error.headers if isinstance(error, Refused) else ()
    return Reply(int(document["status"]), json_replies.encode(document), problems.MEDIA_TYPE, headers)  # type: ignore[call-overload]

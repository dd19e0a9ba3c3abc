"""The web layer's one error format: RFC 9457 problem details, and the HTTP status each domain error gets."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from churn.errors import InvalidCustomer, MalformedInput, Problem, ServiceError, TooLarge, UnsupportedFormat

MEDIA_TYPE = "application/problem+json"
# Domain errors know nothing of HTTP: this table is where each gets its status.
STATUS: dict[type[ServiceError], int] = {
    MalformedInput: 400,
    TooLarge: 413,
    UnsupportedFormat: 415,
    InvalidCustomer: 422,
}


class Refused(ServiceError):
    """A request the web layer itself refuses, with its status and any headers the status calls for."""

    def __init__(self, status: int, detail: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = tuple(headers)


def status_of(error: ServiceError) -> int:
    """The HTTP status of ``error``: its own for :class:`Refused`, else its class's in :data:`STATUS`."""
    if isinstance(error, Refused):
        return error.status
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    raise TypeError(f"no HTTP status for {type(error).__name__}")


def document(status: int, detail: str, problems: Sequence[Problem] = ()) -> dict[str, object]:
    """The problem document: ``detail`` for people, ``errors`` for code."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": [problem.as_dict() for problem in problems],
    }


def of(error: ServiceError) -> dict[str, object]:
    """The problem document a client gets for ``error``."""
    return document(status_of(error), error.detail, error.problems)

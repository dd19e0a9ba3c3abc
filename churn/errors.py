"""Errors shared by training and serving, with the field problems they carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one record."""

    field: str | None
    message: str
    index: int | None = None
    allowed: tuple[str | int, ...] | None = None
    # Set for records read from a file: where an editor shows the row (the header is line 1).
    line: int | None = None

    def at(self, index: int, line: int | None = None) -> Problem:
        """The same problem, located in record ``index`` of a batch (at ``line`` of a file)."""
        return Problem(self.field, self.message, index, self.allowed, line)

    def as_dict(self) -> dict[str, object]:
        """The JSON form clients read: ``index``, ``field``, ``message``, maybe ``allowed`` and ``line``."""
        data: dict[str, object] = {"index": self.index, "field": self.field, "message": self.message}
        if self.allowed is not None:
            data["allowed"] = list(self.allowed)
        if self.line is not None:
            data["line"] = self.line
        return data

    def __str__(self) -> str:
        where, joint = "", ""
        if self.line is not None:
            where, joint = f"line {self.line}", ", "
        elif self.index is not None:
            where, joint = f"[{self.index}]", "."
        if self.field is not None:
            where = f"{where}{joint}{self.field}"
        return f"{where}: {self.message}" if where else self.message


class ServiceError(Exception):
    """An error a client caused, with the HTTP status that says so."""

    status = 400

    def __init__(self, detail: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = tuple(problems)


class BadRequest(ServiceError):
    """The body is not JSON of a shape the service understands."""

    status = 400


class PayloadTooLarge(ServiceError):
    """The body or the batch is larger than the service accepts."""

    status = 413

    @classmethod
    def body(cls, limit: int, size: int | None = None) -> PayloadTooLarge:
        """The body is over ``limit`` bytes (``size`` when it declared one)."""
        has = f"{size} bytes" if size is not None else "more bytes"
        return cls(f"The body has {has}; the limit is {limit}. Split the batch into smaller requests.")


class UnsupportedMediaType(ServiceError):
    """The body is not declared as JSON."""

    status = 415


class InvalidCustomer(ServiceError):
    """Well-formed JSON whose customer fields are missing or wrong."""

    status = 422

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(summarise(problems), problems)


def summarise(problems: Sequence[Problem], limit: int = 3) -> str:
    """One readable sentence naming the first few problems."""
    shown = "; ".join(str(p) for p in problems[:limit])
    more = len(problems) - limit
    noun = "problem" if len(problems) == 1 else "problems"
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{len(problems)} {noun} with the customer data: {shown}{suffix}"

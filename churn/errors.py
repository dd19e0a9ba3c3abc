"""Errors shared by training and serving, with the field problems they carry; no HTTP status here."""

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
    """Input the service refuses, with the field problems that say why; the web layer picks the status."""

    def __init__(self, detail: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = tuple(problems)


class MalformedInput(ServiceError):
    """The input is not JSON or CSV of a shape the service understands."""


class TooLarge(ServiceError):
    """The body, the batch or the file is larger than the service accepts."""

    @classmethod
    def body(cls, limit: int, size: int | None = None) -> TooLarge:
        """The body is over ``limit`` bytes (``size`` when it declared one)."""
        has = f"{size} bytes" if size is not None else "more bytes"
        return cls(f"The body has {has}; the limit is {limit}. Split the batch into smaller requests.")

    @classmethod
    def batch(cls, size: int, limit: int, noun: str = "customer") -> TooLarge:
        """The batch has ``size`` records (``noun``: customer, outcome), over ``limit``."""
        return cls(f"The batch has {size} {noun}s; the limit is {limit}. Split it into smaller requests.")

    @classmethod
    def batch_over(cls, limit: int, noun: str = "customer") -> TooLarge:
        """The batch has more than ``limit`` records (``noun``), found before it was read to its end."""
        return cls(f"The batch has more than {limit} {noun}s; the limit is {limit}. Split it into smaller requests.")

    @classmethod
    def file(cls, limit: int) -> TooLarge:
        """The uploaded file has more than ``limit`` rows."""
        return cls(f"The file has more than {limit} rows, the limit. Split it, or use predict_file.py.")


class UnsupportedFormat(ServiceError):
    """The input is declared as something other than what the endpoint reads."""

    @classmethod
    def json(cls) -> UnsupportedFormat:
        """The body was not declared as JSON."""
        return cls(
            "Send the customer as JSON with the header Content-Type: application/json "
            "(with curl: -H 'Content-Type: application/json')."
        )

    @classmethod
    def upload(cls, field: str) -> UnsupportedFormat:
        """The body is not a multipart form."""
        return cls(
            f"Upload the CSV as multipart/form-data in a field named {field!r} (with curl: -F {field}=@customers.csv)."
        )


class InvalidCustomer(ServiceError):
    """Well-formed input whose customer fields are missing or wrong."""

    def __init__(self, problems: Sequence[Problem], limit: int | None = None) -> None:
        # A batch of 1000 empty records has 19,000 problems: past ``limit`` the count says how many there were.
        listed = problems if limit is None else problems[:limit]
        detail = summarise(problems)
        if len(listed) < len(problems):
            detail += f" (the first {len(listed)} are listed)"
        super().__init__(detail, listed)


def summarise(problems: Sequence[Problem], limit: int = 3) -> str:
    """One readable sentence naming the first few problems."""
    shown = "; ".join(str(p) for p in problems[:limit])
    more = len(problems) - limit
    noun = "problem" if len(problems) == 1 else "problems"
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{len(problems)} {noun} with the customer data: {shown}{suffix}"

"""Argument types shared by the command lines (``predict_file.py``, the benchmark)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from churn import settings

T = TypeVar("T")


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum``, refused with the bound named."""

    def integer(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {text}")
        return value

    return integer


def from_setting(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a setting's parser: the same values, refused in the service's words."""

    def argument(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r} is not valid: {error}") from None

    return argument


probability = from_setting(settings.probability)

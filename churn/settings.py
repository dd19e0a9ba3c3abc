"""Service settings, read from environment variables with defaults that work out of the box."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


@dataclass(frozen=True)
class Settings:
    """What an operator can change without touching code."""

    model_path: Path = PROJECT_DIR / "model_C=1.0.bin"
    threshold: float = 0.5
    max_request_bytes: int = 2 * 1024 * 1024
    max_batch_size: int = 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from the ``CHURN_*`` environment variables; unset or empty ones keep the defaults.

        ``CHURN_MODEL_PATH``, ``CHURN_THRESHOLD``, ``CHURN_MAX_REQUEST_BYTES``, ``CHURN_MAX_BATCH_SIZE``.
        """
        values = {}
        for field in fields(cls):
            variable = env_name(field.name)
            text = environ.get(variable, "").strip()
            if not text:
                continue
            try:
                values[field.name] = PARSERS[field.name](text)
            except ValueError as error:
                raise SettingsError(f"{variable}={text!r} is not valid: {error}") from None
        return cls(**values)


def env_name(field_name: str) -> str:
    """The environment variable that sets a field: ``CHURN_`` and its name in capitals."""
    return f"CHURN_{field_name.upper()}"


PARSERS: dict[str, Callable[[str], object]] = {
    "model_path": _path,
    "threshold": _probability,
    "max_request_bytes": _positive_int,
    "max_batch_size": _positive_int,
}

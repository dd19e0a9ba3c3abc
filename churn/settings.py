"""Service settings, read from environment variables with defaults that work out of the box.

Each field is declared with its parser and its meaning; ``CHURN_`` plus the field's name in capitals
sets it. The README's settings table lists them all (a test checks that it does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def probability(text: str) -> float:
    """A number from 0 to 1, as a threshold is."""
    value = float(text)
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise ValueError("must be between 0 and 1")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _keys(text: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    if not keys:
        raise ValueError("lists no key")
    return keys


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text.lower()

    return parse


def _switch(text: str) -> bool:
    words = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}
    if text.lower() not in words:
        raise ValueError("must be on or off")
    return words[text.lower()]


def _text(text: str) -> str:
    return text


def setting(default: Any, parse: Callable[[str], Any], meaning: str, *, secret: bool = False) -> Any:
    """A settings field: its default, the parser of its variable's text, and what it means."""
    return field(default=default, repr=not secret, metadata={"parse": parse, "meaning": meaning})


@dataclass(frozen=True)
class Settings:
    """What an operator can change without touching code."""

    model_path: Path = setting(
        PROJECT_DIR / "model_C=1.0.bin", _path, "The model file; its metadata is the same path plus `.json`."
    )
    threshold: float = setting(0.5, probability, "`churn` is true when the probability is at least this.")
    # 1,000 Telco customers (the largest batch) take at most 753 KB even pretty-printed with indent=4, and parsing
    # the costliest body of this size takes Python about half of the 100 ms of CPU a request may cost.
    max_request_bytes: int = setting(1024 * 1024, positive_int, "Larger bodies get 413.")
    max_batch_size: int = setting(1000, positive_int, "Larger batches (and uploaded files with more rows) get 413.")
    api_keys: tuple[str, ...] = setting(
        (), _keys, "Comma-separated keys; when set, data endpoints need `Authorization: Bearer KEY`.", secret=True
    )
    api_keys_file: Path | None = setting(None, _path, "A file with one API key a line (a mounted secret).")
    log_format: str = setting("text", _one_of("text", "json"), "`json`: one JSON line per request on stdout.")
    metrics: bool = setting(True, _switch, "`off` removes `/metrics` and its cost.")
    prediction_log: str | None = setting(
        None, _text, "Where every prediction is recorded: `sqlite:///…`, `postgresql://…`, `redis://…`, `stdout`.",
        secret=True,
    )  # fmt: skip
    prediction_log_password_file: Path | None = setting(
        None, _path, "A file holding the password of the prediction log's database (a mounted secret)."
    )
    prediction_log_buffer: int = setting(
        100_000, positive_int, "Records held while the prediction log's database is down; more are dropped."
    )
    monitoring_window: int = setting(10_000, positive_int, "Predictions in `/monitoring`'s default window.")
    monitoring_psi_watch: float = setting(0.1, float, "PSI from which a feature is marked `watch`.")
    monitoring_psi_act: float = setting(0.25, float, "PSI above which a feature is marked `act`.")
    monitoring_metrics_interval_s: float = setting(
        300.0, float, "Seconds between recomputations of the drift and AUC gauges."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from the ``CHURN_*`` environment variables; unset or empty ones keep the defaults."""
        values = {}
        for declared in fields(cls):
            variable = env_name(declared.name)
            text = environ.get(variable, "").strip()
            if not text:
                continue
            try:
                values[declared.name] = declared.metadata["parse"](text)
            except ValueError as error:
                shown = "(hidden)" if not declared.repr else repr(text)
                raise SettingsError(f"{variable}={shown} is not valid: {error}") from None
        return cls(**values)


def env_name(field_name: str) -> str:
    """The environment variable that sets a field: ``CHURN_`` and its name in capitals."""
    return f"CHURN_{field_name.upper()}"


def documented() -> list[tuple[str, str, str]]:
    """Each setting's variable, default as the README shows it, and meaning."""
    rows = []
    for declared in fields(Settings):
        default = declared.default
        if isinstance(default, Path):
            default = default.relative_to(PROJECT_DIR) if default.is_relative_to(PROJECT_DIR) else default
        if default in (None, ()):
            default = "unset"
        elif isinstance(default, bool):
            default = "on" if default else "off"
        rows.append((env_name(declared.name), str(default), declared.metadata["meaning"]))
    return rows

"""API keys: who may call the data endpoints, from ``CHURN_API_KEYS`` or the file ``CHURN_API_KEYS_FILE`` names."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from churn.pipeline import Call, Endpoint, Rule
from churn.problems import Refused
from churn.settings import Settings, SettingsError

CHALLENGE = ("WWW-Authenticate", 'Bearer realm="churn"')


def api_keys(settings: Settings) -> frozenset[str]:
    """The keys the settings give, from the variable and the file together; empty means the service is open."""
    keys = set(settings.api_keys)
    if settings.api_keys_file is not None:
        keys |= _read_keys(settings.api_keys_file)
    return frozenset(keys)


def _read_keys(path: Path) -> set[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"CHURN_API_KEYS_FILE: cannot read {path}: {error}") from None
    keys = {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
    if not keys:
        raise SettingsError(f"CHURN_API_KEYS_FILE: {path} holds no key (one key a line)")
    return keys


def presented_key(call: Call) -> str | None:
    """The key a request carries: ``Authorization: Bearer KEY``, or ``X-API-Key: KEY``."""
    scheme, _, credentials = call.header("Authorization").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return call.header("X-API-Key").strip() or None


def missing_key() -> Refused:
    """The refusal of a request that carries no key."""
    return Refused(401, "This endpoint needs an API key: send Authorization: Bearer KEY.", [CHALLENGE])


def require_key(keys: frozenset[str]) -> Rule:
    """A rule refusing protected endpoints without one of ``keys`` (401 problem+json with a Bearer challenge)."""
    # Digests of equal length, compared in constant time, and each one every time: the answer's timing says
    # nothing about how much of a key was right, nor which key was close.
    digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def rule(call: Call, endpoint: Endpoint | None) -> None:
        if endpoint is None or not endpoint.protected:
            return
        key = presented_key(call)
        if key is None:
            raise missing_key()
        digest = hashlib.sha256(key.encode()).digest()
        matched = False
        for expected in digests:
            matched |= hmac.compare_digest(digest, expected)
        if not matched:
            raise Refused(401, "The API key is not valid.", [CHALLENGE])

    return rule

"""The Docker engine the container tests use: the ``docker`` command, and whether an engine can be used here."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

BASE_IMAGE = "python:3.11-slim"
# Proxy settings on this machine reach the builds' pip too (Docker predefines these build arguments).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``docker ARGS``, its output captured; a failure fails the test unless ``check`` is false."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def engine_problem() -> str | None:
    """Why no Docker engine can be used here, or None."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if result.returncode != 0:
        return f"no Docker engine answers: {result.stderr.strip().splitlines()[-1:]}"
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        return f"the base image {BASE_IMAGE} is missing and cannot be pulled here (see scripts/base-image)"
    return None


def require_engine() -> None:
    """Skip the test when no Docker engine and base image can be used here; fail it in CI, which must run it."""
    problem = engine_problem()
    if problem:
        reason = f"{problem}: run scripts/docker-engine as root (scripts/test does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the container tests, but {reason}")
        pytest.skip(reason)

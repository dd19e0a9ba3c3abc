"""A real ``gunicorn predict:app`` on a free port, started and stopped as the README and Docker do it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from churn.settings import PROJECT_DIR

GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """A running ``gunicorn predict:app`` and where its output goes."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        """Everything gunicorn and the app have written so far."""
        return self.log.read_text()


def start_gunicorn(log: Path, env: dict[str, str] | None = None, wait: bool = True) -> Server:
    """Start ``gunicorn predict:app`` from the project folder, as the README says, on a free port."""
    port = free_port()
    environ = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "2", **(env or {})}
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(GUNICORN), "predict:app"],
            cwd=PROJECT_DIR,
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while wait:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{server.output()}")
        try:
            if requests.get(f"{server.url}/ping", timeout=5).ok:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            stop(server)
            pytest.fail(f"gunicorn did not answer /ping within 60 s:\n{server.output()}")
        time.sleep(0.1)
    return server


def stop(server: Server) -> int:
    """SIGTERM, as Docker and Elastic Beanstalk send it; the exit status."""
    server.process.terminate()
    try:
        return server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise


def effective_config(**env: str) -> dict[str, str]:
    """gunicorn's own reading of gunicorn.conf.py, as ``gunicorn predict:app`` would use it."""
    output = subprocess.run(
        [str(GUNICORN), "--print-config", "predict:app"],
        cwd=PROJECT_DIR, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return dict(re.findall(r"^(\w+)\s+= (.*)$", output, re.MULTILINE))

"""compose.yaml brought up for real with Debian's docker-compose 1.29, under a project name of its own.

The images it names come from a registry or, without one, as stand-ins from ``scripts/compose-images``; the
service's image is built from the working tree, with the host's network as the other container tests build.
Everything the stack made (containers, network, volumes, the built tag) goes when it is taken down.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from churn.settings import PROJECT_DIR
from tests.helpers.docker import PROXY_VARIABLES, docker, require_engine
from tests.helpers.gunicorn import free_port

COMPOSE_FILE = PROJECT_DIR / "compose.yaml"
SERVICE = "churn"
SERVICE_PORT = 9696
# The first build installs every locked package; later ones take the cached layers.
UP_TIMEOUT_S = 1200
HEALTHY_TIMEOUT_S = 120


def compose_file() -> dict[str, Any]:
    """compose.yaml, as YAML."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def require_compose() -> None:
    """Skip the test without docker-compose (fail it in CI, which must run it)."""
    if shutil.which("docker-compose") is None:
        reason = "docker-compose is not installed: apt-get install docker-compose (scripts/system-packages does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def compose(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``docker-compose ARGS`` from the project folder; a failure fails the test unless ``check`` is false."""
    result = subprocess.run(
        ["docker-compose", *args], cwd=PROJECT_DIR, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check and result.returncode != 0:
        pytest.fail(f"docker-compose {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def images() -> list[str]:
    """The images compose.yaml runs beside the service."""
    return [service["image"] for service in compose_file()["services"].values() if "image" in service]


def provide_images() -> None:
    """Pull the images compose.yaml names or build their stand-ins (``scripts/compose-images``), when missing."""
    if all(docker("image", "inspect", image, check=False).returncode == 0 for image in images()):
        return
    result = subprocess.run(
        [str(PROJECT_DIR / "scripts" / "compose-images")], capture_output=True, text=True, timeout=UP_TIMEOUT_S
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/compose-images failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def write_secrets() -> None:
    """The secret files compose.yaml mounts, as the docs have users write them: scripts/compose-secrets, once."""
    subprocess.run([str(PROJECT_DIR / "scripts" / "compose-secrets")], check=True, capture_output=True, timeout=30)


def api_key() -> str:
    """The service's API key: the first line of its secret."""
    return (PROJECT_DIR / "secrets" / "api_keys").read_text().splitlines()[0]


@dataclass
class Stack:
    """A running compose.yaml: its project name, the files and variables it was started with, the service's port."""

    project: str
    files: list[Path]
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        """Where the published port of the service answers."""
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``docker-compose -p PROJECT -f ... ARGS``."""
        files = [word for path in self.files for word in ("-f", str(path))]
        return compose("-p", self.project, *files, *args, env=self.env, timeout=timeout, check=check)

    def exec(self, service: str, *command: str) -> str:
        """What ``command`` prints in the container of ``service``."""
        return self.run("exec", "-T", service, *command).stdout

    def container(self, service: str) -> str:
        """The id of the container of ``service``."""
        return self.run("ps", "-q", service).stdout.strip()

    def health(self, service: str) -> str:
        """What Docker says of the health of ``service``: ``starting``, ``healthy`` or ``unhealthy``."""
        return docker("inspect", "--format={{.State.Health.Status}}", self.container(service)).stdout.strip()

    def wait_healthy(self, service: str) -> None:
        """Wait until the health check of ``service`` passes; fail with its logs if it does not in time."""
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while (status := self.health(service)) != "healthy":
            if status == "unhealthy" or time.monotonic() > deadline:
                pytest.fail(f"{service} is {status}:\n{self.logs(service)}")
            time.sleep(1)

    def logs(self, *services: str) -> str:
        """The last lines each service wrote."""
        result = self.run("logs", "--no-color", "--tail=60", *services, check=False)
        return result.stdout + result.stderr

    def psql(self, query: str) -> list[list[str]]:
        """The rows ``query`` gives in the prediction log's database, each a list of its columns' text."""
        output = self.exec("postgres", "psql", "-U", "churn", "-d", "churn", "-AtF", "\t", "-v", "ON_ERROR_STOP=1",
                           "-c", query)  # fmt: skip
        return [line.split("\t") for line in output.splitlines()]

    def prometheus(self, query: str) -> list[dict[str, Any]]:
        """The result of an instant ``query`` from Prometheus' own query API, asked from inside its container."""
        answer = self.exec("prometheus", "wget", "-qO-", f"http://localhost:9090/api/v1/query?query={quote(query)}")
        document = json.loads(answer)
        assert document["status"] == "success", answer
        return document["data"]["result"]


@contextlib.contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """compose.yaml up, built from the working tree, every service healthy; taken down with its volumes afterwards.

    An override in ``workdir`` tags the service's image for this run only and builds it with the host's network.
    """
    require_compose()
    require_engine()
    provide_images()
    write_secrets()
    project = f"churntest{uuid.uuid4().hex[:10]}"
    tag = f"churn-serving-compose:{project}"
    proxies = {name: os.environ[name] for name in PROXY_VARIABLES if os.environ.get(name)}
    override = workdir / "compose.override.yaml"
    build = {"context": str(PROJECT_DIR), "network": "host", **({"args": proxies} if proxies else {})}
    override.write_text(yaml.safe_dump({"services": {SERVICE: {"image": tag, "build": build}}}))
    port = free_port()
    stack = Stack(project, [COMPOSE_FILE, override], port, {"CHURN_PORT": str(port)})
    try:
        up = stack.run("up", "--detach", "--build", timeout=UP_TIMEOUT_S, check=False)
        if up.returncode != 0:
            pytest.fail(f"docker-compose up failed ({up.returncode}):\n{up.stdout[-5000:]}{up.stderr[-5000:]}\n"
                        f"{stack.logs()}")  # fmt: skip
        for service in compose_file()["services"]:
            stack.wait_healthy(service)
        yield stack
    finally:
        stack.run("down", "--volumes", "--remove-orphans", "--timeout=20", check=False)
        # Untag only: the layers stay cached, so the next run builds in seconds.
        docker("rmi", "--no-prune", tag, check=False)

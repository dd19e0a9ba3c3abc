"""The Docker image: the Dockerfile's rules, then the real image built from the EB bundle, run and stopped."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from churn.examples import SAMPLE_CUSTOMER
from churn.settings import PROJECT_DIR
from tests.helpers.deployment import DOCKERFILE, copied_sources, dockerfile_instruction, make_bundle, option_settings
from tests.helpers.docker import PROXY_VARIABLES, docker, require_engine
from tests.helpers.gunicorn import free_port

HADOLINT = Path(sys.executable).with_name("hadolint")
PORT = 9696
START_SECONDS = 90
HEALTH_PATH = option_settings()[("aws:elasticbeanstalk:application", "Application Healthcheck URL")]


def test_hadolint_passes():
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_the_pipfiles_python():
    python = tomllib.loads((PROJECT_DIR / "Pipfile").read_text())["requires"]["python_version"]
    assert {line.split()[0] for line in dockerfile_instruction("FROM")} == {f"python:{python}-slim"}


def test_pipenv_is_the_pinned_one_and_installs_the_lock_only():
    pin = re.search(r'PIPENV_PIN="(.+)"', (PROJECT_DIR / "scripts" / "pipenv.sh").read_text()).group(1)
    runs = " ".join(dockerfile_instruction("RUN"))
    assert f"pip install --no-cache-dir {pin}" in runs
    assert "pipenv install --system --deploy" in runs
    assert "--dev" not in runs


def test_serves_through_gunicorn_conf_as_a_numeric_non_root_user():
    [user] = dockerfile_instruction("USER")
    assert all(part.isdigit() and int(part) != 0 for part in user.split(":"))
    assert dockerfile_instruction("EXPOSE") == [str(PORT)]
    # Exec form, so gunicorn itself is PID 1 and receives SIGTERM.
    [command] = dockerfile_instruction("CMD")
    assert json.loads(command)[:3] == ["gunicorn", "--config", "gunicorn.conf.py"]
    [healthcheck] = dockerfile_instruction("HEALTHCHECK")
    assert f"'{HEALTH_PATH}'" in healthcheck


@dataclass
class Image:
    tag: str
    context: Path
    build_seconds: float


class ImageReport:
    """A pytest plugin: the image's size and build time, in the terminal summary."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.write_sep("-", "docker image")
        for line in self.lines:
            terminalreporter.write_line(line)


def build(context: Path, tag: str, *build_args: str) -> subprocess.CompletedProcess[str]:
    # The host's network: the build's pip reaches the index the way this machine does.
    proxies = [f"--build-arg={name}" for name in PROXY_VARIABLES if os.environ.get(name)]
    arguments = [f"--build-arg={argument}" for argument in build_args]
    # --force-rm: a failed step leaves no container behind either.
    return docker(
        "build", "--network=host", "--force-rm", *proxies, *arguments, "--tag", tag, str(context),
        timeout=1200, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Image]:
    """The image built from exactly the files of the EB source bundle, as Elastic Beanstalk builds it."""
    require_engine()
    context = tmp_path_factory.mktemp("bundle")
    bundle = make_bundle(context.parent / f"{context.name}.zip")
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(context)
    tag = f"churn-serving-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    result = build(context, tag)
    built = Image(tag, context, time.monotonic() - started)
    if result.returncode != 0:
        pytest.fail(f"docker build failed:\n{result.stdout[-5000:]}{result.stderr[-5000:]}")
    yield built
    size = int(docker("image", "inspect", "--format={{.Size}}", tag).stdout)
    report = ImageReport()
    report.lines.append(f"{tag}: {size / 1e6:.0f} MB, built from the EB bundle in {built.build_seconds:.1f} s")
    request.config.pluginmanager.register(report)
    # Untag only: the layers stay cached, so the next build reuses them.
    docker("rmi", "--no-prune", tag, check=False)


@dataclass
class Container:
    name: str
    url: str


@contextlib.contextmanager
def running(tag: str) -> Iterator[Container]:
    """The image ``tag`` run as `docker run -p <port>:9696`, answering its health path; removed afterwards."""
    name = f"churn-serving-test-{uuid.uuid4().hex[:12]}"
    port = free_port()
    # A short health interval, to see the image's own HEALTHCHECK pass within the test.
    docker("run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:{PORT}", "--health-interval=1s",
           tag)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    try:
        while True:
            try:
                if requests.get(f"{url}{HEALTH_PATH}", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            state = docker("inspect", "--format={{.State.Running}}", name).stdout.strip()
            if state != "true" or time.monotonic() > deadline:
                pytest.fail(f"the container did not answer {HEALTH_PATH}:\n{logs(name)}")
            time.sleep(0.2)
        yield Container(name, url)
    finally:
        docker("rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def container(image: Image) -> Iterator[Container]:
    """The image built from the EB bundle, running."""
    with running(image.tag) as started:
        yield started


def logs(name: str) -> str:
    result = docker("logs", name, check=False)
    return result.stdout + result.stderr


def exec_in(container: Container, *command: str) -> str:
    return docker("exec", container.name, *command).stdout


def test_course_client_scores_against_the_container(container: Container):
    result = subprocess.run(
        [sys.executable, "predict_test.py", "--url", container.url],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer, decision = result.stdout.splitlines()
    assert answer.startswith("{'churn_probability': 0.0676")
    assert decision == "not sending promo email to xyz-123"


def test_health_path_that_elastic_beanstalk_probes(container: Container):
    response = requests.get(f"{container.url}{HEALTH_PATH}", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    deadline = time.monotonic() + 30
    while (status := docker("inspect", "--format={{.State.Health.Status}}", container.name).stdout.strip()) not in (
        "healthy",
        "unhealthy",
    ) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == "healthy", f"the image's HEALTHCHECK says {status}"


def test_gunicorn_is_pid_1_and_not_root(container: Container):
    status = exec_in(container, "cat", "/proc/1/status")
    uids = re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE).group(1).split()
    assert "0" not in uids, f"PID 1 runs with user ids {uids}"
    command = exec_in(container, "cat", "/proc/1/cmdline").split("\0")
    assert any(word.endswith("/gunicorn") for word in command[:2]), command
    assert exec_in(container, "id", "-u").strip() != "0"


def test_image_holds_the_serving_files_and_no_tools(container: Container):
    listed = exec_in(container, "find", "/app", "-type", "f").split()
    files = {path.removeprefix("/app/") for path in listed}
    assert {name for name in files if "/" not in name} == {
        source for source in copied_sources() if source not in ("Pipfile", "Pipfile.lock", "churn")
    }
    assert "churn/templates/index.html" in files
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]
    # Built with pipenv, but neither pipenv nor the dev packages come along.
    probe = "import importlib.util as u; print([m for m in ('pipenv', 'pytest', 'ebcli') if u.find_spec(m)])"
    assert exec_in(container, "python", "-c", probe).strip() == "[]"


def test_docker_stop_ends_it_cleanly_within_seconds(container: Container):
    started = time.monotonic()
    docker("stop", "--time=30", container.name, timeout=60)
    elapsed = time.monotonic() - started
    state = json.loads(docker("inspect", "--format={{json .State}}", container.name).stdout)
    assert state["ExitCode"] == 0, logs(container.name)
    assert elapsed < 10, f"docker stop took {elapsed:.1f} s"
    assert "Shutting down: Master" in logs(container.name)


def test_an_image_built_with_another_model_serves_it(image: Image, tmp_path: Path):
    """`docker build --build-arg MODEL=model_C=0.5.bin`: the bundle's .dockerignore admits it, the image serves it."""
    context = tmp_path / "context"
    shutil.copytree(image.context, context)
    # A copy under another C's name: train.py's file name for `--C 0.5`, and the metadata matches its bytes.
    for suffix in ("", ".json"):
        shutil.copy2(context / f"model_C=1.0.bin{suffix}", context / f"model_C=0.5.bin{suffix}")
    tag = f"churn-serving-model:{uuid.uuid4().hex[:12]}"
    result = build(context, tag, "MODEL=model_C=0.5.bin")
    try:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        with running(tag) as other:
            models = exec_in(other, "sh", "-c", 'echo "$CHURN_MODEL_PATH"; ls /app').split()
            assert models[0] == "/app/model_C=0.5.bin"
            assert [name for name in models[1:] if name.startswith("model_")] == [
                "model_C=0.5.bin", "model_C=0.5.bin.json"
            ]  # fmt: skip
            response = requests.post(f"{other.url}/predict", json=SAMPLE_CUSTOMER, timeout=10)
            assert response.status_code == 200
            assert response.json()["churn_probability"] == pytest.approx(0.0676, abs=1e-4)
    finally:
        docker("rmi", "--no-prune", tag, check=False)


def test_stale_lock_fails_the_build(image: Image, tmp_path: Path):
    context = tmp_path / "context"
    shutil.copytree(image.context, context)
    # A package added to the Pipfile without running `pipenv lock`.
    pipfile = (context / "Pipfile").read_text().replace("[packages]\n", '[packages]\nsix = "*"\n', 1)
    (context / "Pipfile").write_text(pipfile)
    tag = f"churn-serving-stale:{uuid.uuid4().hex[:12]}"
    result = build(context, tag)
    docker("rmi", "--no-prune", tag, check=False)
    assert result.returncode != 0, "a Pipfile.lock out of date with the Pipfile must fail the build"
    output = " ".join((result.stdout + result.stderr).split())  # pipenv wraps its lines
    assert "Pipfile.lock" in output
    assert "is out of date" in output

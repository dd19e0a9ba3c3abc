"""compose.yaml: its rules read from the file, then the stack brought up, used, looked into and taken down."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy.engine import make_url

from churn.doctor import Project
from churn.examples import SAMPLE_CUSTOMER
from churn.settings import PROJECT_DIR
from tests.helpers import data
from tests.helpers.compose import (
    COMPOSE_FILE,
    SERVICE,
    SERVICE_PORT,
    UP_TIMEOUT_S,
    Stack,
    api_key,
    compose,
    compose_file,
    images,
    require_compose,
    running_stack,
)
from tests.helpers.docker import docker

HADOLINT = Path(sys.executable).with_name("hadolint")
SECRETS_SCRIPT = PROJECT_DIR / "scripts" / "compose-secrets"
# The log is written in the background, and Prometheus scrapes every few seconds.
SEEN_WITHIN_S = 60
# The first test to use the stack waits for it to be built and started.
USES_THE_STACK = pytest.mark.timeout(UP_TIMEOUT_S + 300)


def services() -> dict[str, dict]:
    return compose_file()["services"]


def test_it_is_the_compose_specification_and_publishes_only_the_service():
    assert "version" not in compose_file()
    published = {name: service["ports"] for name, service in services().items() if "ports" in service}
    assert published == {SERVICE: [f"${{CHURN_PORT:-{SERVICE_PORT}}}:{SERVICE_PORT}"]}


def test_every_service_has_a_health_check_and_waits_for_what_it_needs():
    assert all(service["healthcheck"]["test"][0] == "CMD" for service in services().values())
    depends = {name: service.get("depends_on") for name, service in services().items()}
    assert depends == {
        SERVICE: {"postgres": {"condition": "service_healthy"}},
        "postgres": None,
        "prometheus": {SERVICE: {"condition": "service_healthy"}},
    }
    # Healthy means ready to score: the database answers too.
    assert "/ready" in " ".join(services()[SERVICE]["healthcheck"]["test"])


def test_data_lives_in_named_volumes():
    volumes = {name: service.get("volumes", []) for name, service in services().items()}
    assert "postgres-data:/var/lib/postgresql/data" in volumes["postgres"]
    assert "prometheus-data:/prometheus" in volumes["prometheus"]
    named = {entry.split(":")[0] for entries in volumes.values() for entry in entries if not entry.startswith(".")}
    assert named == set(compose_file()["volumes"])


def test_passwords_and_keys_come_from_file_secrets():
    secrets = compose_file()["secrets"]
    assert secrets == {name: {"file": f"./secrets/{name}"} for name in ("db_password", "api_keys")}
    service, postgres = services()[SERVICE], services()["postgres"]
    assert make_url(service["environment"]["CHURN_PREDICTION_LOG"]).password is None
    # The one secret PostgreSQL is created with and the service logs in with.
    assert service["environment"]["CHURN_PREDICTION_LOG_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert service["environment"]["CHURN_API_KEYS_FILE"] == "/run/secrets/api_keys"
    assert service["secrets"] == ["db_password", "api_keys"]
    assert postgres["secrets"] == ["db_password"]
    assert "secrets" not in services()["prometheus"]


def test_the_secrets_stay_out_of_git_the_image_and_the_bundle():
    checked = subprocess.run(
        ["git", "check-ignore", "-q", "secrets/api_keys"], cwd=PROJECT_DIR, timeout=30, check=False
    )
    assert checked.returncode == 0, ".gitignore does not ignore secrets/"
    project = Project(PROJECT_DIR)
    assert not project.in_build_context("secrets/api_keys")
    assert not project.in_bundle("secrets/api_keys")


def test_prometheus_scrapes_the_service_by_its_compose_name():
    prometheus = services()["prometheus"]
    [config] = [volume for volume in prometheus["volumes"] if volume.endswith(":/etc/prometheus/prometheus.yml:ro")]
    scrape = yaml.safe_load((PROJECT_DIR / config.split(":")[0]).read_text())["scrape_configs"]
    assert [(job["metrics_path"], job["static_configs"]) for job in scrape] == [
        ("/metrics", [{"targets": [f"{SERVICE}:{SERVICE_PORT}"]}])
    ]


def test_every_image_beside_the_service_has_a_stand_in():
    """scripts/compose-images finds each stand-in by the image's name, without its repository and tag."""
    for image in images():
        name = image.split(":")[0].split("/")[-1]
        assert (PROJECT_DIR / "compose" / "stand-ins" / name / "Dockerfile").is_file(), image


@pytest.mark.parametrize("name", ["postgres", "prometheus"])
def test_hadolint_passes_on_the_stand_in(name: str):
    dockerfile = PROJECT_DIR / "compose" / "stand-ins" / name / "Dockerfile"
    result = subprocess.run([str(HADOLINT), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_reads_it():
    require_compose()
    result = compose("-f", str(COMPOSE_FILE), "config", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert yaml.safe_load(result.stdout)["services"].keys() == services().keys()


def test_secrets_are_written_once_random_and_private(tmp_path: Path):
    (tmp_path / "scripts").mkdir()
    script = shutil.copy(SECRETS_SCRIPT, tmp_path / "scripts")
    subprocess.run([script], check=True, capture_output=True, timeout=30)
    folder = tmp_path / "secrets"
    written = {path.name: path.read_text() for path in folder.iterdir()}
    assert written.keys() == {"db_password", "api_keys"}
    assert all(len(value.strip()) >= 40 and value.count("\n") == 1 for value in written.values())
    assert written["db_password"] != written["api_keys"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # Readable in the containers, whose users do not own them on the host: the folder keeps others out.
    assert {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {0o644}
    (folder / "api_keys").write_text("my-own-key\n")
    subprocess.run([script], check=True, capture_output=True, timeout=30)
    assert (folder / "api_keys").read_text() == "my-own-key\n"
    assert (folder / "db_password").read_text() == written["db_password"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("compose")) as started:
        yield started


@pytest.fixture(scope="module")
def key(stack: Stack) -> str:
    return api_key()


@dataclass
class Scored:
    """What the stack answered to the customers the tests scored: each customer id's probability."""

    probabilities: dict[str, float]
    requests: int


@pytest.fixture(scope="module")
def scored(stack: Stack, key: str) -> Scored:
    """The course's customer alone, then two customers of the data set in one batch."""
    frame = data.course_frame().head(2)
    batch = [{"customerid": row.pop("customerid"), **{k: row[k] for k in data.COURSE_FEATURES}}
             for row in frame.to_dict("records")]  # fmt: skip
    probabilities = {}
    bodies = (SAMPLE_CUSTOMER, batch)
    for body in bodies:
        response = requests.post(f"{stack.url}/predict", json=body, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30)  # fmt: skip
        assert response.status_code == 200, response.text
        answers = response.json() if isinstance(body, list) else [response.json()]
        probabilities.update({answer["customerid"]: answer["churn_probability"] for answer in answers})
    return Scored(probabilities, len(bodies))


def eventually(look: Callable[[], object], want: object, what: str) -> None:
    """Wait until ``look()`` gives ``want``; fail saying what was last seen."""
    deadline = time.monotonic() + SEEN_WITHIN_S
    while (seen := look()) != want:
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: {seen!r} after {SEEN_WITHIN_S} s, not {want!r}")
        time.sleep(1)


@USES_THE_STACK
def test_scored_customers_are_rows_in_postgresql(stack: Stack, scored: Scored):
    def rows() -> dict[str, float]:
        found = stack.psql("SELECT customer_id, probability FROM churn_predictions WHERE endpoint = '/predict'")
        return {customer: float(probability) for customer, probability in found}

    eventually(rows, scored.probabilities, "the prediction log's rows")


@USES_THE_STACK
def test_prometheus_counts_the_scoring_requests(stack: Stack, scored: Scored):
    def count() -> list[object]:
        query = f'sum(churn_requests_total{{job="{SERVICE}",endpoint="/predict",status="200"}})'
        return [float(result["value"][1]) for result in stack.prometheus(query)]

    eventually(count, [float(scored.requests)], "Prometheus' count of answered /predict requests")
    [target] = stack.prometheus(f'up{{job="{SERVICE}"}}')
    assert target["metric"]["instance"] == f"{SERVICE}:{SERVICE_PORT}"


@USES_THE_STACK
def test_scoring_needs_the_key_from_the_secret(stack: Stack):
    response = requests.post(f"{stack.url}/predict", json=SAMPLE_CUSTOMER, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.post(f"{stack.url}/predict", json=SAMPLE_CUSTOMER, headers={"X-API-Key": "wrong"}, timeout=30)
    assert wrong.status_code == 401


@USES_THE_STACK
def test_postgresql_asks_for_the_password_from_the_network(stack: Stack):
    """The service's login works because of the secret, not because the database trusts its network."""
    attempt = "import psycopg; psycopg.connect('host=postgres user=churn dbname=churn connect_timeout=5')"
    result = stack.run("exec", "-T", SERVICE, "python", "-c", attempt, check=False)
    assert result.returncode != 0
    assert "password" in result.stderr


@USES_THE_STACK
def test_nothing_but_the_service_port_is_published(stack: Stack):
    for service in services():
        ports = docker("inspect", "--format={{json .NetworkSettings.Ports}}", stack.container(service)).stdout
        bindings = {port: hosts for port, hosts in yaml.safe_load(ports).items() if hosts}
        if service == SERVICE:
            assert bindings.keys() == {f"{SERVICE_PORT}/tcp"}
            assert {int(host["HostPort"]) for host in bindings[f"{SERVICE_PORT}/tcp"]} == {stack.port}
        else:
            assert bindings == {}, f"{service} publishes {bindings}"


@USES_THE_STACK
def test_the_service_runs_as_its_own_user_on_a_read_only_root(stack: Stack):
    assert stack.exec(SERVICE, "id", "-u").strip() == "10001"
    result = stack.run("exec", "-T", SERVICE, "touch", "/app/written", check=False)
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr

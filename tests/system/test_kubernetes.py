"""The Kubernetes manifests: each overlay rendered by kustomize, validated offline and held to the service's rules."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor

from churn.settings import PROJECT_DIR
from tests.helpers.gunicorn import effective_config
from tests.helpers.tools import pinned_tool

K8S_DIR = PROJECT_DIR / "k8s"
OVERLAYS = ("kind", "eks")
KUBERNETES_VALIDATE = Path(sys.executable).with_name("kubernetes-validate")
# The three newest minor versions whose schemas the installed kubernetes-validate has.
KUBERNETES_VERSIONS = sorted(
    {major_minor(version) for version in all_versions()}, key=lambda minor: [int(part) for part in minor.split(".")]
)[-3:]
CHECKOV = ("checkov", "3.3.30")
PORT = 9696
USER_ID = 10001
NAMESPACE = "churn"
# gunicorn's own reading, in its own process: running gunicorn.conf.py here would set up a metrics directory.
GUNICORN = effective_config()
GRACEFUL_TIMEOUT = int(GUNICORN["graceful_timeout"])
# Settings that hold credentials: only ever from a Secret.
SECRET_SETTINGS = {"CHURN_PREDICTION_LOG"}
# scheme://user:password@host
CREDENTIALS_URL = re.compile(r"\w+://[^/\s:@]+:[^/\s@]+@")
MEMORY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


@dataclass(frozen=True)
class Rendered:
    """An overlay as ``kubectl kustomize`` renders it: the file and the objects in it."""

    overlay: str
    path: Path
    objects: list[dict]

    def all(self, kind: str) -> list[dict]:
        return [item for item in self.objects if item["kind"] == kind]

    def one(self, kind: str) -> dict:
        [item] = self.all(kind)
        return item

    @property
    def pod(self) -> dict:
        return self.one("Deployment")["spec"]["template"]

    @property
    def container(self) -> dict:
        [container] = self.pod["spec"]["containers"]
        return container

    def settings(self) -> dict[str, str]:
        """The container's environment: the ConfigMaps it loads, then its own variables with a literal value."""
        configmaps = {item["metadata"]["name"]: item["data"] for item in self.all("ConfigMap")}
        values = {}
        for source in self.container.get("envFrom", []):
            values.update(configmaps[source["configMapRef"]["name"]])
        values.update({var["name"]: var["value"] for var in self.container.get("env", []) if "value" in var})
        return values


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        reason = "kubectl is not installed: it renders the kustomize overlays"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return {overlay: render(kubectl, overlay, tmp_path_factory.mktemp(overlay)) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    return renders[request.param]


@pytest.fixture(scope="session")
def checkov() -> Path:
    return pinned_tool(*CHECKOV)


def render(kubectl: str, overlay: str, directory: Path) -> Rendered:
    """``kubectl kustomize`` of an overlay, kept in a file for the validators."""
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S_DIR / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    path = directory / f"{overlay}.yaml"
    path.write_text(result.stdout)
    return Rendered(overlay, path, [item for item in yaml.safe_load_all(result.stdout) if item])


def bytes_of(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(\w*)", quantity).groups()
    return int(number) * MEMORY_UNITS[unit]


def cpus(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def test_three_kubernetes_versions_to_validate_against():
    assert len(KUBERNETES_VERSIONS) == 3


def test_every_object_is_valid_kubernetes(rendered: Rendered):
    arguments = [arg for version in KUBERNETES_VERSIONS for arg in ("--kubernetes-version", f"{version}.0")]
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", *arguments, str(rendered.path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # A kind or apiVersion without a schema is only a warning there, and a typo in either would pass unchecked.
    assert [line for line in lines if not line.startswith("INFO ")] == []
    assert len(lines) == len(rendered.objects) * len(KUBERNETES_VERSIONS)


def test_checkov_finds_nothing_unjustified(rendered: Rendered, checkov: Path):
    result = subprocess.run(
        [
            str(checkov),
            "--file",
            rendered.path.name,
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
        cwd=rendered.path.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    results = report["results"]
    assert [(check["check_id"], check["resource"], check["check_name"]) for check in results["failed_checks"]] == []
    assert results["parsing_errors"] == []
    assert report["summary"]["passed"] > 0
    assert result.returncode == 0, result.stderr
    skipped = {
        check["check_id"]: check["check_result"].get("suppress_comment", "") for check in results["skipped_checks"]
    }
    assert {check: reason for check, reason in skipped.items() if len(reason.split()) < 5} == {}
    # Each exception is explained where people read about the manifests, too.
    docs = (PROJECT_DIR / "docs" / "kubernetes.md").read_text()
    assert [check for check in skipped if check not in docs] == []


def test_probes_ask_the_right_endpoints_on_the_container_port(rendered: Rendered):
    container = rendered.container
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert list(ports.values()) == [PORT]
    assert rendered.settings()["PORT"] == str(PORT)
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")}
    # Readiness covers the model and the prediction log; liveness must not restart a pod for a database outage.
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startup": "/health",
        "readiness": "/ready",
        "liveness": "/health",
    }
    assert {ports.get(probe["port"], probe["port"]) for probe in probes.values()} == {PORT}


def test_memory_request_equals_limit(rendered: Rendered):
    resources = rendered.container["resources"]
    assert bytes_of(resources["requests"]["memory"]) == bytes_of(resources["limits"]["memory"])
    assert cpus(resources["requests"]["cpu"]) > 0


def test_workers_fit_the_cpu_request(rendered: Rendered):
    # gunicorn.conf.py counts the node's CPUs, not the pod's share, so the count must be set for the pod.
    requested = cpus(rendered.container["resources"]["requests"]["cpu"])
    assert int(rendered.settings()["WEB_CONCURRENCY"]) == math.ceil(requested) + 1


def test_grace_period_outlasts_the_prestop_sleep_and_gunicorns_graceful_timeout(rendered: Rendered):
    sleep = rendered.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep > 0
    assert rendered.pod["spec"]["terminationGracePeriodSeconds"] > sleep + GRACEFUL_TIMEOUT


def test_runs_locked_down(rendered: Rendered):
    pod = rendered.pod["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == USER_ID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = rendered.container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == USER_ID
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(flag, False)


def test_the_writable_paths_are_empty_dirs(rendered: Rendered):
    volumes = {volume["name"]: volume for volume in rendered.pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in rendered.container["volumeMounts"]}
    for path in ("/tmp", rendered.settings()["PROMETHEUS_MULTIPROC_DIR"]):
        assert "emptyDir" in mounts[path], path
        assert mounts[path]["emptyDir"].get("sizeLimit"), f"{path} could fill the node's disk"


def test_no_secret_values_are_committed(rendered: Rendered):
    assert rendered.all("Secret") == []
    assert CREDENTIALS_URL.search(rendered.path.read_text()) is None
    env = {var["name"]: var for var in rendered.container["env"]}
    for name in SECRET_SETTINGS:
        assert set(env[name]) == {"name", "valueFrom"}
        assert "secretKeyRef" in env[name]["valueFrom"]
    # The API keys are a file from a Secret volume, not a variable.
    keys_file = Path(env["CHURN_API_KEYS_FILE"]["value"])
    volumes = {volume["name"]: volume for volume in rendered.pod["spec"]["volumes"]}
    [mount] = [mount for mount in rendered.container["volumeMounts"] if keys_file.parent == Path(mount["mountPath"])]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert {item["path"] for item in secret["items"]} == {keys_file.name}


def test_settings_come_from_the_rendered_config_map(rendered: Rendered):
    settings = rendered.settings()
    assert {"CHURN_THRESHOLD", "CHURN_MAX_REQUEST_BYTES", "CHURN_MAX_BATCH_SIZE", "CHURN_LOG_FORMAT"} <= set(settings)
    assert settings["CHURN_LOG_FORMAT"] in {"text", "json"}


def test_service_budget_and_policy_select_the_pods(rendered: Rendered):
    labels = rendered.pod["metadata"]["labels"]
    service = rendered.one("Service")
    assert matches(service["spec"]["selector"], labels)
    assert {rendered_port["targetPort"] for rendered_port in service["spec"]["ports"]} <= {"http", PORT}
    assert matches(rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    policy = rendered.one("NetworkPolicy")["spec"]
    assert matches(policy["podSelector"]["matchLabels"], labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert [port for rule in policy["ingress"] for port in rule["ports"]] == [{"port": PORT, "protocol": "TCP"}]
    # DNS and PostgreSQL, nothing else, each to named destinations rather than anywhere.
    assert {port["port"] for rule in policy["egress"] for port in rule["ports"]} == {53, 5432}
    assert all(rule.get("to") for rule in policy["egress"])


def test_everything_lives_in_one_locked_down_namespace(rendered: Rendered):
    namespace = rendered.one("Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    others = [item for item in rendered.objects if item["kind"] != "Namespace"]
    assert {item["metadata"].get("namespace") for item in others} == {NAMESPACE}


def test_image_is_pinned_by_tag(rendered: Rendered):
    image = rendered.container["image"]
    name, _, tag = image.rpartition(":")
    assert name.endswith("churn-serving")
    assert "/" not in tag
    assert tag not in {"", "latest"}


def test_kind_runs_one_replica_of_the_loaded_image(renders: dict[str, Rendered]):
    kind = renders["kind"]
    assert kind.one("Deployment")["spec"]["replicas"] == 1
    assert kind.container["imagePullPolicy"] in {"Never", "IfNotPresent"}
    assert kind.all("HorizontalPodAutoscaler") == []


def test_eks_scales_from_ecr_behind_a_load_balancer(renders: dict[str, Rendered]):
    eks = renders["eks"]
    assert re.fullmatch(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/churn-serving:[\w.-]+", eks.container["image"])
    # The autoscaler owns the replica count; one in the Deployment would reset it on every apply.
    assert "replicas" not in eks.one("Deployment")["spec"]
    autoscaler = eks.one("HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "churn-serving",
    }
    assert 2 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
    ingress = eks.one("Ingress")
    assert ingress["spec"]["ingressClassName"] == "alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/ready"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    # Below gunicorn's keep-alive, so the load balancer never reuses a connection gunicorn has closed.
    keepalive = int(GUNICORN["keepalive"])
    attributes = annotations["alb.ingress.kubernetes.io/load-balancer-attributes"]
    idle = int(re.search(r"idle_timeout\.timeout_seconds=(\d+)", attributes).group(1))
    assert idle < keepalive

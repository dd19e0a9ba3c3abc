"""The GitHub Actions workflow: valid for GitHub, actions pinned by commit, read-only, every job time-boxed."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from churn.settings import PROJECT_DIR

WORKFLOW = PROJECT_DIR / ".github" / "workflows" / "ci.yml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
# owner/repo, an optional folder inside it, then a full commit SHA: a tag or branch can be moved, a commit cannot.
PINNED = re.compile(r"[\w.-]+/[\w.-]+(/[\w.-]+)*@[0-9a-f]{40}")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+(\.\d+)*$")
MAX_TIMEOUT_MINUTES = 60


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def is_pinned(ref: str) -> bool:
    return PINNED.fullmatch(ref) is not None


@pytest.mark.parametrize(
    "schema",
    [
        "vendor.github-workflows",
        # check-jsonschema's own rule: every job has timeout-minutes.
        "custom.github-workflows-require-timeout",
    ],
)
def test_check_jsonschema_passes(schema: str):
    # The builtin schemas ship inside check-jsonschema, so this needs no network.
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(WORKFLOW)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("ref", "pinned"),
    [
        ("actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8", True),
        ("github/codeql-action/init@0123456789abcdef0123456789abcdef01234567", True),
        ("actions/checkout@v5", False),
        ("actions/checkout@v5.0.0", False),
        ("actions/checkout@main", False),
        ("actions/checkout@08c6903", False),
        ("actions/checkout@08C6903CD8C0FDE910A37F88322EDCFB5DD907A8", False),
        ("./.github/actions/local", False),
        ("docker://alpine:3.20", False),
    ],
)
def test_pinning_rule(ref: str, pinned: bool):
    assert is_pinned(ref) is pinned


def test_every_action_is_pinned_by_commit(workflow: dict):
    refs = [step["uses"] for step in steps(workflow) if "uses" in step]
    refs += [job["uses"] for job in workflow["jobs"].values() if "uses" in job]
    assert refs, "the workflow uses no actions: the rule checks nothing"
    assert [ref for ref in refs if not is_pinned(ref)] == []


def test_every_pin_names_its_version():
    # A bare SHA says nothing to a reviewer or to Dependabot's updates; the comment says which release it is.
    lines = [match for line in WORKFLOW.read_text().splitlines() if (match := USES_LINE.match(line))]
    assert lines
    assert [m.group(0) for m in lines if not VERSION_COMMENT.fullmatch(m.group("comment"))] == []


def test_token_can_only_read_the_code(workflow: dict):
    assert workflow["permissions"] == {"contents": "read"}
    granted = {name: job["permissions"] for name, job in workflow["jobs"].items() if "permissions" in job}
    assert {name: scopes for name, scopes in granted.items() if scopes != "read-all" and "write" in str(scopes)} == {}


def test_checkout_keeps_no_credentials(workflow: dict):
    checkouts = [step for step in steps(workflow) if step.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    assert all(step.get("with", {}).get("persist-credentials") is False for step in checkouts)


def test_every_job_has_a_timeout(workflow: dict):
    timeouts = {name: job.get("timeout-minutes") for name, job in workflow["jobs"].items()}
    assert {name: t for name, t in timeouts.items() if not (isinstance(t, int) and 0 < t <= MAX_TIMEOUT_MINUTES)} == {}


def test_python_is_the_pipfiles(workflow: dict):
    python = tomllib.loads((PROJECT_DIR / "Pipfile").read_text())["requires"]["python_version"]
    setups = [step for step in steps(workflow) if step.get("uses", "").startswith("actions/setup-python@")]
    assert len(setups) == len(workflow["jobs"]), "every job sets up Python"
    assert {step["with"]["python-version"] for step in setups} == {python}


def test_jobs_lint_test_build_and_validate(workflow: dict):
    commands = {name: " ".join(step.get("run", "") for step in job["steps"]) for name, job in workflow["jobs"].items()}
    assert "ruff check" in commands["lint"]
    assert "ruff format --check" in commands["lint"]
    assert "scripts/test unit http" in commands["tests"]
    assert "docker build" in commands["image"]
    assert "tests/system/test_docker.py" in commands["image"]
    assert "tests/system/test_kubernetes.py" in commands["manifests"]


def test_named_files_exist(workflow: dict):
    runs = " ".join(step.get("run", "") for step in steps(workflow))
    named = set(re.findall(r"(?:scripts|tests)/[\w./]+", runs))
    assert named
    assert sorted(path for path in named if not (PROJECT_DIR / path).exists()) == []


def test_docs_describe_every_job(workflow: dict):
    docs = (PROJECT_DIR / "docs" / "ci.md").read_text()
    assert [name for name in workflow["jobs"] if f"`{name}`" not in docs] == []

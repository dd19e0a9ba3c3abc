"""scripts/doctor's checks: the real project passes, and a copy broken one way at a time fails with the fix."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from churn import doctor
from churn.settings import PROJECT_DIR

# What the checks read: the image's and Elastic Beanstalk's inputs, nothing else.
NEEDED = (
    "Pipfile", "Pipfile.lock", "Dockerfile", ".dockerignore", ".ebignore", "gunicorn.conf.py",
    ".elasticbeanstalk/config.yml", ".ebextensions", ".platform", "model_C=1.0.bin", "model_C=1.0.bin.json",
)  # fmt: skip


def test_the_project_passes():
    result = subprocess.run(
        [sys.executable, "-m", "churn.doctor"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    checks = [line for line in lines if not line.startswith("info")]
    assert len(checks) == len(doctor.CHECKS)
    assert all(line.startswith("ok ") for line in checks), result.stdout
    assert lines[len(checks) :], "the uncommitted changes come after the checks"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in NEEDED:
        source, target = PROJECT_DIR / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return tmp_path


def run(project: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = doctor.main(["--project", str(project)])
    return status, capsys.readouterr().out.splitlines()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_the_copy_passes(copy: Path, capsys: pytest.CaptureFixture[str]):
    status, lines = run(copy, capsys)
    assert status == 0, "\n".join(lines)
    assert lines[-1] == "info  not a git repository: `eb deploy` ships the working tree through .ebignore"


def stale_lock(project: Path) -> None:
    edit(project / "Pipfile", "[packages]\n", '[packages]\nsix = "*"\n')


def other_python(project: Path) -> None:
    (project / "Dockerfile").write_text(
        (project / "Dockerfile").read_text().replace("python:3.11-slim", "python:3.12-slim")
    )


def changed_model(project: Path) -> None:
    with (project / "model_C=1.0.bin").open("ab") as model:
        model.write(b"\0")


def model_outside_the_bundle(project: Path) -> None:
    for suffix in ("", ".json"):
        (project / f"model_C=1.0.bin{suffix}").rename(project / f"churn-model.bin{suffix}")
    edit(project / "Dockerfile", "ARG MODEL=model_C=1.0.bin", "ARG MODEL=churn-model.bin")


def old_platform(project: Path) -> None:
    edit(project / ".elasticbeanstalk/config.yml", "Amazon Linux 2023", "Amazon Linux 2")


def imdsv1_allowed(project: Path) -> None:
    edit(project / ".ebextensions/churn-serving.config", "DisableIMDSv1: true", "DisableIMDSv1: false")


def load_balancer_option(project: Path) -> None:
    (project / ".ebextensions/load-balancer.config").write_text(
        "option_settings:\n  aws:elbv2:loadbalancer:\n    IdleTimeout: 60\n"
    )


def small_nginx_limit(project: Path) -> None:
    edit(project / ".platform/nginx/conf.d/churn-proxy.conf", "client_max_body_size 1m;", "client_max_body_size 512k;")


def wrong_health_path(project: Path) -> None:
    edit(project / ".ebextensions/churn-serving.config", "Healthcheck URL: /health", "Healthcheck URL: /healthz")


def short_keep_alive(project: Path) -> None:
    edit(project / "gunicorn.conf.py", "keepalive = 75", "keepalive = 30")


@pytest.mark.parametrize(
    ("breakage", "check", "message"),
    [
        (stale_lock, "lock", r"Pipfile\.lock was made for another Pipfile .* Fix: run `pipenv lock`"),
        (other_python, "python", r"Dockerfile python:3\.12-slim, Pipfile 3\.11, Pipfile\.lock 3\.11\. Fix:"),
        (changed_model, "model", r"the file changed after training\. Fix: restore it, or retrain"),
        (model_outside_the_bundle, "bundle", r"churn-model\.bin, churn-model\.bin\.json not in the EB bundle"),
        (old_platform, "platform", r"'Docker running on 64bit Amazon Linux 2', not the current Docker branch"),
        (imdsv1_allowed, "launch template", r"Launch Configuration creation operation is not available"),
        (load_balancer_option, "single instance", r"\(aws:elbv2:loadbalancer IdleTimeout\) make `eb create --single`"),
        (small_nginx_limit, "nginx body", r"nginx takes 524288 bytes, less than the service's 1048576"),
        (wrong_health_path, "health path", r"the service answers /healthz with 404"),
        (short_keep_alive, "keep-alive", r"nginx to gunicorn idle 60 s < gunicorn keep-alive 30 s"),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_a_broken_copy_fails_that_check_with_its_fix(
    copy: Path, capsys: pytest.CaptureFixture[str], breakage: Callable[[Path], None], check: str, message: str
):
    breakage(copy)
    status, lines = run(copy, capsys)
    assert status == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1, "\n".join(lines)
    assert failed[0].startswith(f"FAIL  {check:<15} ")
    assert re.search(message, failed[0]), failed[0]


def test_the_lock_hash_is_pipenvs():
    """The committed Pipfile.lock is pipenv's own: its hash is what the check computes for the Pipfile beside it."""
    project = doctor.Project(PROJECT_DIR)
    assert doctor.pipfile_hash(project.pipfile()) == project.lock()["_meta"]["hash"]["sha256"]

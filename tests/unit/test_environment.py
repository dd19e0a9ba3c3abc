"""The locked environment is current, and it is the one the committed model was trained in."""

import json
import os
import platform
import shutil
import subprocess
import tomllib
from importlib.metadata import version

import pytest

from churn.settings import PROJECT_DIR


@pytest.fixture(scope="module")
def lock() -> dict:
    return json.loads((PROJECT_DIR / "Pipfile.lock").read_text())


def test_lock_matches_the_pipfile():
    pipenv = shutil.which("pipenv")
    if pipenv is None:
        if os.environ.get("CI"):
            pytest.fail("pipenv is not on PATH in CI")
        pytest.skip("pipenv is not on PATH")
    result = subprocess.run([pipenv, "verify"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"Pipfile.lock is stale, run `pipenv lock`:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("package", ["scikit-learn", "numpy", "pandas"])
def test_model_was_trained_with_the_locked_versions(lock, model, package):
    locked = lock["default"][package]["version"].removeprefix("==")
    assert model.metadata["versions"][package] == locked
    assert version(package) == locked


def test_python_is_the_pipfiles(lock, model):
    pipfile = tomllib.loads((PROJECT_DIR / "Pipfile").read_text())
    wanted = pipfile["requires"]["python_version"]
    assert lock["_meta"]["requires"]["python_version"] == wanted
    assert platform.python_version().startswith(f"{wanted}.")
    assert model.metadata["versions"]["python"].startswith(f"{wanted}.")


def test_dateutil_stays_below_4_for_awsebcli(lock):
    assert lock["default"]["python-dateutil"]["version"].startswith("==2.")
    assert "awsebcli" in lock["develop"]

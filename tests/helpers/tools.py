"""Command-line tools the tests run from their own pinned virtualenvs, apart from the project's locked packages.

checkov pins older packaging, boto3 and botocore than the EB CLI in the Pipfile needs, so it cannot share the
project's virtualenv. Each tool is installed once into ``.tools/<package>-<version>/`` and reused after that.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

from churn.settings import PROJECT_DIR

TOOLS_DIR = PROJECT_DIR / ".tools"
INSTALL_TIMEOUT = 900


class ToolInstallError(RuntimeError):
    """pip could not install a pinned tool."""


def pinned_tool(package: str, version: str, command: str | None = None) -> Path:
    """The executable ``command`` (default: the package's name) of ``package==version``, installed on first use."""
    venv = TOOLS_DIR / f"{package}-{version}"
    executable = venv / "bin" / (command or package)
    # Written last: a directory without it is an interrupted install, started again from scratch.
    complete = venv / ".complete"
    TOOLS_DIR.mkdir(exist_ok=True)
    # Two test runs at once must not install into the same directory.
    with (TOOLS_DIR / f"{package}-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.exists():
            shutil.rmtree(venv, ignore_errors=True)
            # The interpreter running the tests: the project's Python 3.11, whatever python3 is on PATH.
            _run([sys.executable, "-m", "venv", str(venv)])
            _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{package}=={version}"])
            complete.touch()
    if not executable.exists():
        raise ToolInstallError(f"{package}=={version} has no command {executable.name}")
    return executable


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    if result.returncode != 0:
        raise ToolInstallError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")

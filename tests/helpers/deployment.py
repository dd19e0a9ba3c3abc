"""What Elastic Beanstalk gets from this project: the EB CLI's source bundle and the .ebextensions settings."""

from __future__ import annotations

import contextlib
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ebcli.core import fileoperations, io

from churn.doctor import Project
from churn.settings import PROJECT_DIR

PLATFORM = "Docker running on 64bit Amazon Linux 2023"
DOCKERFILE = PROJECT_DIR / "Dockerfile"


@contextlib.contextmanager
def in_project(project: Path = PROJECT_DIR) -> Iterator[None]:
    """The EB CLI finds the project from the working directory, and prints every file it zips."""
    cwd = Path.cwd()
    log_info = io.log_info
    os.chdir(project)
    io.log_info = lambda message: None
    try:
        yield
    finally:
        io.log_info = log_info
        os.chdir(cwd)


def make_bundle(target: Path, project: Path = PROJECT_DIR) -> Path:
    """The zip `eb create` and `eb deploy` upload, made by the EB CLI's own code from the working tree."""
    with in_project(project):
        ignored = fileoperations.get_ebignore_list()
        # Without .ebignore the EB CLI would run `git archive HEAD` instead: committed files only.
        assert ignored is not None, ".ebignore is missing"
        fileoperations.zip_up_project(str(target), ignore_list=ignored)
    return target


def bundle_files(bundle: Path) -> dict[str, int]:
    """Each file in the bundle and its size."""
    with zipfile.ZipFile(bundle) as archive:
        return {info.filename.removeprefix("./"): info.file_size for info in archive.infolist() if not info.is_dir()}


def copied_sources(project: Path = PROJECT_DIR) -> list[str]:
    """What the project's Dockerfile copies from the build context (``COPY --from`` copies from a stage), as built
    without build arguments, as Elastic Beanstalk builds it: ``${MODEL}`` is the default of ``ARG MODEL``."""
    dockerfile = Project(project).dockerfile
    defaults = dict(argument.split("=", 1) for argument in dockerfile("ARG") if "=" in argument)
    sources = []
    for arguments in dockerfile("COPY"):
        words = re.sub(r"\$\{(\w+)\}", lambda match: defaults[match.group(1)], arguments).split()
        if not any(word.startswith("--from") for word in words):
            sources += [word.rstrip("/") for word in words[:-1] if not word.startswith("--")]
    return sources


def option_settings() -> dict[tuple[str, str], str]:
    """Every ``(namespace, option name)`` set in the project's .ebextensions/*.config, as the doctor reads them."""
    return Project(PROJECT_DIR).option_settings()


def dockerfile_instruction(name: str) -> list[str]:
    """The arguments of each ``name`` instruction in the project's Dockerfile, continuation lines joined."""
    return Project(PROJECT_DIR).dockerfile(name)

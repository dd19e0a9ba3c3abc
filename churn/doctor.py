"""Preflight before `docker build` or `eb create`: offline checks of what the image and Elastic Beanstalk need.

``python -m churn.doctor [--project DIR]`` (or ``scripts/doctor``) prints one line per check, ``ok`` or
``FAIL`` with the fix, then what `eb deploy` would ship that is not committed, and exits 0 only when
every check passes. It reads files only: no Docker, no AWS.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import hashlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pathspec import PathSpec

from churn.app import create_app
from churn.metadata import file_sha256, read_metadata
from churn.model import ModelLoadError, load_model
from churn.settings import PROJECT_DIR, Settings, SettingsError

PLATFORM = "Docker running on 64bit Amazon Linux 2023"
LAUNCH = "aws:autoscaling:launchconfiguration"
# What an application load balancer keeps an idle connection when IdleTimeout is not set.
ALB_IDLE_TIMEOUT = 60
# nginx's defaults: client bodies, idle client connections, and idle connections to the upstream (EB's
# upstream block for the container sets no keepalive_timeout of its own).
NGINX_BODY_LIMIT = 1024 * 1024
NGINX_KEEPALIVE_TIMEOUT = 75
NGINX_UPSTREAM_KEEPALIVE_TIMEOUT = 60
# Options that need a load balancer: in a `eb create --single` environment they fail it.
LOAD_BALANCER_NAMESPACES = (
    "aws:elb:",
    "aws:elbv2:",
    "aws:elasticbeanstalk:environment:process:",
    "aws:autoscaling:trigger",
)
LOAD_BALANCER_OPTIONS = {
    ("aws:elasticbeanstalk:environment", "EnvironmentType"),
    ("aws:elasticbeanstalk:environment", "LoadBalancerType"),
    ("aws:autoscaling:asg", "MinSize"),
    ("aws:autoscaling:asg", "MaxSize"),
}
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Pipfile sections that are not package categories, as pipenv's Pipfile hash leaves them out.
PIPFILE_SECTIONS = {"source", "packages", "dev-packages", "requires", "scripts", "pipfile", "pipenv"}


class ProjectFileError(Exception):
    """A project file the checks need is missing or cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Result:
    """One check's outcome: what was found when it passes, the problem and its fix when it fails."""

    name: str
    ok: bool
    message: str

    def line(self) -> str:
        """The check as printed: ``ok`` or ``FAIL``, its name, then the message."""
        return f"{'ok' if self.ok else 'FAIL':<5} {self.name:<15} {self.message}"


class Project:
    """The files of a project folder, read as the image build and Elastic Beanstalk read them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def text(self, name: str) -> str:
        """A project file's text."""
        try:
            return (self.root / name).read_text(encoding="utf-8")
        except OSError as error:
            raise ProjectFileError(f"cannot read {name}: {error.strerror}") from None

    def pipfile(self) -> dict:
        """The Pipfile as TOML."""
        try:
            return tomllib.loads(self.text("Pipfile"))
        except tomllib.TOMLDecodeError as error:
            raise ProjectFileError(f"Pipfile is not valid TOML: {error}") from None

    def lock(self) -> dict:
        """Pipfile.lock as JSON."""
        try:
            return json.loads(self.text("Pipfile.lock"))
        except json.JSONDecodeError as error:
            raise ProjectFileError(f"Pipfile.lock is not valid JSON: {error}") from None

    def dockerfile(self, instruction: str) -> list[str]:
        """The arguments of each ``instruction`` in the Dockerfile, continuation lines joined."""
        text = re.sub(r"\\\n\s*", " ", self.text("Dockerfile"))
        return [line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [instruction]]

    def model_name(self) -> str:
        """The model file the image serves: the default of the Dockerfile's ``MODEL`` build argument."""
        for argument in self.dockerfile("ARG"):
            name, _, default = argument.partition("=")
            if name == "MODEL" and default:
                return default
        raise ProjectFileError("the Dockerfile has no `ARG MODEL=<model file>`")

    def option_settings(self) -> dict[tuple[str, str], str]:
        """Every ``(namespace, option)`` set in .ebextensions/*.config, in either of Elastic Beanstalk's syntaxes."""
        settings: dict[tuple[str, str], str] = {}
        for path in sorted((self.root / ".ebextensions").glob("*.config")):
            try:
                document = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("option_settings") or {}
            except yaml.YAMLError as error:
                raise ProjectFileError(f".ebextensions/{path.name} is not valid YAML: {error}") from None
            if isinstance(document, dict):
                for namespace, options in document.items():
                    settings.update({(namespace, name): str(value) for name, value in options.items()})
            else:
                settings.update({(item["namespace"], item["option_name"]): str(item["value"]) for item in document})
        return settings

    def nginx_directives(self, name: str) -> list[str]:
        """The values of an nginx directive in the http-level .platform/nginx/conf.d/*.conf files."""
        values = []
        for path in sorted((self.root / ".platform" / "nginx" / "conf.d").glob("*.conf")):
            values += re.findall(rf"^\s*{name}\s+([^;]+);", path.read_text(encoding="utf-8"), re.MULTILINE)
        return values

    def ebignore(self) -> PathSpec:
        """.ebignore as the EB CLI reads it: gitignore patterns, matched by the same library."""
        return PathSpec.from_lines("gitwildmatch", self.text(".ebignore").splitlines())

    def in_bundle(self, name: str) -> bool:
        """Whether the EB CLI's bundle holds the project file ``name``."""
        return not self.ebignore().match_file(name)

    def in_build_context(self, name: str) -> bool:
        """Whether .dockerignore lets the project-root file ``name`` into the build context (the last match wins)."""
        included = True
        for line in self.text(".dockerignore").splitlines():
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            exception = pattern.startswith("!")
            if fnmatch.fnmatchcase(name, pattern.lstrip("!").lstrip("/")):
                included = exception
        return included

    def service_settings(self) -> Settings:
        """The service's settings in the image: the Dockerfile's ENV, then EB's environment properties."""
        environ: dict[str, str] = {}
        for argument in self.dockerfile("ENV"):
            environ.update(word.partition("=")[::2] for word in shlex.split(argument) if "=" in word)
        properties = "aws:elasticbeanstalk:application:environment"
        environ.update(
            {name: value for (namespace, name), value in self.option_settings().items() if namespace == properties}
        )
        try:
            return Settings.from_env(environ)
        except SettingsError as error:
            raise ProjectFileError(str(error)) from None

    def gunicorn_setting(self, name: str) -> object:
        """A constant assigned in gunicorn.conf.py."""
        for node in ast.parse(self.text("gunicorn.conf.py")).body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return ast.literal_eval(node.value)
        raise ProjectFileError(f"gunicorn.conf.py sets no constant {name}")


def pipfile_hash(pipfile: Mapping[str, object]) -> str:
    """The sha256 pipenv writes to Pipfile.lock's ``_meta.hash``: of the Pipfile's packages, sources and requires."""
    data = {
        "_meta": {"sources": pipfile["source"], "requires": pipfile.get("requires", {})},
        "default": pipfile.get("packages", {}),
        "develop": pipfile.get("dev-packages", {}),
    }
    data.update({key: value for key, value in pipfile.items() if key not in PIPFILE_SECTIONS | {"default", "develop"}})
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def nginx_size(text: str) -> int:
    """Bytes of an nginx size such as ``2m``; 0 means no limit."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", text.strip())
    if not match:
        raise ProjectFileError(f"{text!r} is not an nginx size")
    return int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]


def nginx_seconds(text: str) -> int:
    """Seconds of an nginx time such as ``75s`` or ``1m`` (the first value of keepalive_timeout)."""
    match = re.fullmatch(r"(\d+)(s|m)?", text.split()[0])
    if not match:
        raise ProjectFileError(f"{text!r} is not an nginx time in seconds or minutes")
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def check_lock(project: Project) -> Result:
    """Pipfile.lock is the lock of this Pipfile: pipenv's hash of it matches."""
    expected = project.lock()["_meta"]["hash"]["sha256"]
    actual = pipfile_hash(project.pipfile())
    if actual == expected:
        return Result("lock", True, f"Pipfile.lock is fresh for the Pipfile (sha256 {actual[:12]}...)")
    return Result(
        "lock", False,
        f"Pipfile.lock was made for another Pipfile (lock {expected[:12]}..., Pipfile {actual[:12]}...), so "
        "`pipenv install --deploy` and the image build stop. Fix: run `pipenv lock`, then commit both files.",
    )  # fmt: skip


def check_python(project: Project) -> Result:
    """The Dockerfile's base images, the Pipfile and the lock name one Python."""
    bases = {argument.split()[0] for argument in project.dockerfile("FROM")}
    wanted = project.pipfile().get("requires", {}).get("python_version")
    locked = project.lock()["_meta"].get("requires", {}).get("python_version")
    found = f"Dockerfile {', '.join(sorted(bases))}, Pipfile {wanted}, Pipfile.lock {locked}"
    if wanted and bases == {f"python:{wanted}-slim"} and locked == wanted:
        return Result("python", True, found)
    return Result(
        "python", False,
        f"the Pythons differ: {found}. Fix: make every FROM `python:X.Y-slim` with the Pipfile's "
        "[requires] python_version X.Y, then run `pipenv lock`.",
    )  # fmt: skip


def check_model(project: Project) -> Result:
    """The model the image serves matches its metadata and the locked scikit-learn."""
    name = project.model_name()
    path = project.root / name
    if not path.is_file():
        return Result("model", False, f"{name}, the Dockerfile's MODEL, is missing. Fix: `python train.py` writes it.")
    try:
        metadata = read_metadata(path)
    except (OSError, ValueError) as error:
        return Result(
            "model", False, f"the metadata of {name} cannot be read ({error}). Fix: retrain with `python train.py`."
        )
    sha256 = file_sha256(path)
    if metadata.get("model_sha256") != sha256:
        return Result(
            "model", False,
            f"{name} has sha256 {sha256[:12]}..., its metadata says {str(metadata.get('model_sha256'))[:12]}...: "
            "the file changed after training. Fix: restore it, or retrain with `python train.py`.",
        )  # fmt: skip
    trained_with = metadata.get("versions", {}).get("scikit-learn")
    locked = project.lock()["default"].get("scikit-learn", {}).get("version", "").removeprefix("==")
    if trained_with != locked:
        return Result(
            "model", False,
            f"{name} was trained with scikit-learn {trained_with}, the lock installs {locked}, and a pickle loads "
            "only in the version that wrote it. Fix: retrain with `pipenv run python train.py`, or pin that version.",
        )  # fmt: skip
    return Result("model", True, f"{name} matches its metadata (sha256 {sha256[:12]}..., scikit-learn {locked})")


def check_bundle(project: Project) -> Result:
    """The model and its metadata get into the EB bundle and the Docker build context."""
    name = project.model_name()
    files = (name, f"{name}.json")
    outside_bundle = [file for file in files if not project.in_bundle(file)]
    outside_context = [file for file in files if not project.in_build_context(file)]
    if outside_bundle or outside_context:
        where = [f"{', '.join(outside_bundle)} not in the EB bundle (.ebignore)"] if outside_bundle else []
        where += [f"{', '.join(outside_context)} not in the build context (.dockerignore)"] if outside_context else []
        return Result(
            "bundle", False,
            f"{'; '.join(where)}: the build stops at COPY. Fix: name models model_C=<C>.bin, as train.py "
            "does (both files admit that pattern), or admit the name in both files.",
        )  # fmt: skip
    return Result("bundle", True, f"{name} and its metadata go into the EB bundle and the build context")


def check_platform(project: Project) -> Result:
    """The EB CLI creates environments on the current Docker platform branch."""
    try:
        config = yaml.safe_load(project.text(".elasticbeanstalk/config.yml")) or {}
    except yaml.YAMLError as error:
        raise ProjectFileError(f".elasticbeanstalk/config.yml is not valid YAML: {error}") from None
    platform = (config.get("global") or {}).get("default_platform")
    if platform == PLATFORM:
        return Result("platform", True, platform)
    return Result(
        "platform", False,
        f"default_platform is {platform!r}, not the current Docker branch. Fix: set `default_platform: {PLATFORM}` "
        f"in .elasticbeanstalk/config.yml (or `eb init -p \"{PLATFORM}\"`); plain `docker` picks an older one.",
    )  # fmt: skip


def check_launch_template(project: Project) -> Result:
    """Instances come from a launch template, with the instance profile named."""
    options = project.option_settings()
    if options.get((LAUNCH, "DisableIMDSv1"), "").lower() != "true":
        return Result(
            "launch template", False,
            "DisableIMDSv1 is not true, so Elastic Beanstalk makes a launch configuration, which AWS accounts "
            "created since October 2024 cannot: \"The Launch Configuration creation operation is not available "
            f"in your account\". Fix: set {LAUNCH} DisableIMDSv1: true in .ebextensions.",
        )  # fmt: skip
    profile = options.get((LAUNCH, "IamInstanceProfile"))
    if not profile:
        return Result(
            "launch template", False,
            f"no IamInstanceProfile. Fix: set {LAUNCH} IamInstanceProfile: aws-elasticbeanstalk-ec2-role in "
            ".ebextensions and create it once (docs/deploy.md).",
        )  # fmt: skip
    return Result("launch template", True, f"IMDSv2 only (a launch template), instance profile {profile}")


def check_single_instance(project: Project) -> Result:
    """No option in .ebextensions needs a load balancer, so `eb create --single` works."""
    found = sorted(
        f"{namespace} {name}"
        for namespace, name in project.option_settings()
        if namespace.startswith(LOAD_BALANCER_NAMESPACES) or (namespace, name) in LOAD_BALANCER_OPTIONS
    )
    if found:
        return Result(
            "single instance", False,
            f"load-balancer options in .ebextensions ({'; '.join(found)}) make `eb create --single` fail "
            "(\"... setting cannot be applied because AWSEBV2LoadBalancer doesn't exist\"). Fix: remove them and "
            "pass them to `eb create` for the load-balanced environment (docs/deploy.md).",
        )  # fmt: skip
    return Result("single instance", True, "no load-balancer options in .ebextensions: `eb create --single` works")


def check_body_limit(project: Project) -> Result:
    """Nginx on the instance takes every body the service takes."""
    service = project.service_settings().max_request_bytes
    sizes = project.nginx_directives("client_max_body_size")
    nginx = nginx_size(sizes[-1]) if sizes else NGINX_BODY_LIMIT
    if nginx == 0 or nginx >= service:
        return Result("nginx body", True, f"nginx takes {nginx or 'any'} bytes, the service {service}")
    return Result(
        "nginx body", False,
        f"nginx takes {nginx} bytes, less than the service's {service}, so bodies in between get nginx's HTML "
        "413 \"Request Entity Too Large\". Fix: set client_max_body_size to the service's limit in "
        ".platform/nginx/conf.d/churn-proxy.conf.",
    )  # fmt: skip


def check_health_path(project: Project) -> Result:
    """The health check path is one the service answers with 200."""
    path = project.option_settings().get(("aws:elasticbeanstalk:application", "Application Healthcheck URL"))
    if not path:
        return Result(
            "health path", False,
            "no Application Healthcheck URL, so health checks only open a TCP connection. Fix: set "
            "aws:elasticbeanstalk:application Application Healthcheck URL: /health in .ebextensions.",
        )  # fmt: skip
    try:
        client = create_app(load_model(Settings().model_path)).test_client()
    except ModelLoadError as error:
        return Result("health path", False, f"the service cannot start to answer {path}: {error}")
    status = client.get(path).status_code
    if status == 200:
        return Result("health path", True, f"{path} answers 200")
    return Result(
        "health path", False,
        f"the service answers {path} with {status}, so every instance is unhealthy (\"Health checks failed with "
        "these codes\"). Fix: set Application Healthcheck URL: /health in .ebextensions.",
    )  # fmt: skip


def check_keep_alive(project: Project) -> Result:
    """Each hop keeps idle connections longer than the one in front of it."""
    gunicorn = project.gunicorn_setting("keepalive")
    if not isinstance(gunicorn, int):
        raise ProjectFileError(f"gunicorn.conf.py's keepalive is {gunicorn!r}, not a number of seconds")
    idle = int(project.option_settings().get(("aws:elbv2:loadbalancer", "IdleTimeout"), ALB_IDLE_TIMEOUT))
    timeouts = project.nginx_directives("keepalive_timeout")
    nginx = nginx_seconds(timeouts[-1]) if timeouts else NGINX_KEEPALIVE_TIMEOUT
    found = (
        f"load balancer idle {idle} s < nginx keep-alive {nginx} s; nginx to gunicorn idle "
        f"{NGINX_UPSTREAM_KEEPALIVE_TIMEOUT} s < gunicorn keep-alive {gunicorn} s"
    )
    if idle < nginx and max(idle, NGINX_UPSTREAM_KEEPALIVE_TIMEOUT) < gunicorn:
        return Result("keep-alive", True, found)
    return Result(
        "keep-alive", False,
        f"each side must keep idle connections longer than the one in front of it: want {found}. Otherwise the "
        "one in front reuses a connection just closed, and clients get intermittent 502s. Fix: raise keepalive "
        "in gunicorn.conf.py or keepalive_timeout in .platform/nginx/conf.d/churn-proxy.conf.",
    )  # fmt: skip


CHECKS: tuple[Callable[[Project], Result], ...] = (
    check_lock,
    check_python,
    check_model,
    check_bundle,
    check_platform,
    check_launch_template,
    check_single_instance,
    check_body_limit,
    check_health_path,
    check_keep_alive,
)


def run_checks(project: Project) -> Iterator[Result]:
    """Every check's result; one whose files cannot be read fails with the reason."""
    for check in CHECKS:
        name = check.__name__.removeprefix("check_").replace("_", " ")
        try:
            yield check(project)
        except (ProjectFileError, KeyError, TypeError) as error:
            yield Result(name, False, f"cannot check: {error}")


def uncommitted(project: Project) -> list[str]:
    """Information lines: changed files `eb deploy` would ship though uncommitted, and changed ones it leaves out."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=project.root, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if result.returncode != 0:
        return ["info  not a git repository: `eb deploy` ships the working tree through .ebignore"]
    changed = [line[3:].split(" -> ")[-1].strip('"') for line in result.stdout.splitlines()]
    ignored = project.ebignore()
    shipped = [name for name in changed if not ignored.match_file(name)]
    left = [name for name in changed if ignored.match_file(name)]
    lines = []
    if shipped:
        lines.append(f"info  uncommitted, and `eb deploy` ships them: {', '.join(shipped)}")
    if left:
        lines.append(f"info  changed, but not in the bundle: {', '.join(left)}")
    return lines or ["info  no uncommitted changes"]


def main(argv: list[str] | None = None) -> int:
    """Print every check and what `eb deploy` would ship; 0 when all pass, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m churn.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=PROJECT_DIR, help="the project folder (default: this one)")
    project = Project(parser.parse_args(argv).project.resolve())
    results = list(run_checks(project))
    for line in [result.line() for result in results] + uncommitted(project):
        print(line)
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())

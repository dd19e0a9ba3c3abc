"""Elastic Beanstalk: the committed EB CLI configuration, the .ebextensions settings, and the source bundle."""

import subprocess
from pathlib import Path

import yaml
from ebcli.core import fileoperations
from ebcli.operations import commonops, initializeops, platformops
from ebcli.resources.strings import git_ignore

from churn.settings import PROJECT_DIR
from tests.helpers.deployment import PLATFORM, bundle_files, copied_sources, in_project, make_bundle, option_settings
from tests.helpers.gunicorn import effective_config

CONFIG = PROJECT_DIR / ".elasticbeanstalk" / "config.yml"
PROCESS = "aws:elasticbeanstalk:environment:process:default"


def test_eb_cli_reads_the_committed_configuration():
    with in_project():
        assert fileoperations.get_application_name() == "churn-serving"
        assert commonops.get_default_region() == "eu-west-1"
        # The branch name, not plain `docker`, which resolves to an older platform.
        assert platformops.get_configured_default_platform() == PLATFORM
        assert fileoperations.get_workspace_type() == "Application"


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args],
        cwd=cwd, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_configuration_is_what_eb_init_writes(tmp_path, monkeypatch):
    """`eb init churn-serving --platform ... --region eu-west-1`, with its AWS calls left out."""
    git("init", "--quiet", "--initial-branch=main", cwd=tmp_path)
    git("commit", "--quiet", "--allow-empty", "--message=init", cwd=tmp_path)
    gitignore = (PROJECT_DIR / ".gitignore").read_text()
    (tmp_path / ".gitignore").write_text(gitignore)
    monkeypatch.chdir(tmp_path)
    fileoperations.touch_config_folder()
    fileoperations.write_config_setting("global", "profile", None)  # credentials from the environment
    commonops.set_environment_for_current_branch(None)  # creating the application
    commonops.set_group_suffix_for_current_branch(None)
    initializeops.setup("churn-serving", "eu-west-1", PLATFORM)
    fileoperations.write_config_setting("global", "default_ec2_keyname", None)  # no SSH key
    fileoperations.write_config_setting("global", "include_git_submodules", True)

    written = yaml.safe_load((tmp_path / ".elasticbeanstalk" / "config.yml").read_text())
    assert yaml.safe_load(CONFIG.read_text()) == written
    # Its ignore block is there already, so eb init leaves .gitignore (and config.yml tracked) alone.
    assert (tmp_path / ".gitignore").read_text() == gitignore


def test_gitignore_keeps_the_configuration_tracked(tmp_path):
    gitignore = (PROJECT_DIR / ".gitignore").read_text()
    # eb init's own block, which ignores config.yml, then the line that keeps it.
    assert all(line in gitignore.splitlines() for line in git_ignore)
    (tmp_path / ".gitignore").write_text(gitignore)
    git("init", "--quiet", cwd=tmp_path)

    def ignored(path: str) -> bool:
        return git("check-ignore", "--no-index", "--quiet", path, cwd=tmp_path).returncode == 0

    assert not ignored(".elasticbeanstalk/config.yml")
    assert ignored(".elasticbeanstalk/app_versions/app-1.zip")
    assert ignored(".elasticbeanstalk/logs/latest")


def test_health_check_is_a_route_the_service_serves(client):
    settings = option_settings()
    path = settings[(PROCESS, "HealthCheckPath")]
    assert settings[("aws:elasticbeanstalk:application", "Application Healthcheck URL")] == path
    assert settings[(PROCESS, "MatcherHTTPCode")] == "200"
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_load_balanced_autoscaling_with_enhanced_health():
    settings = option_settings()
    assert settings[("aws:elasticbeanstalk:environment", "EnvironmentType")] == "LoadBalanced"
    assert settings[("aws:elasticbeanstalk:environment", "LoadBalancerType")] == "application"
    assert settings[("aws:autoscaling:asg", "MinSize")] == "1"
    assert settings[("aws:autoscaling:asg", "MaxSize")] == "4"
    assert settings[("aws:elasticbeanstalk:healthreporting:system", "SystemType")] == "enhanced"


def test_gunicorn_keeps_connections_longer_than_what_is_in_front_of_it():
    keepalive = int(effective_config()["keepalive"])
    assert int(option_settings()[("aws:elbv2:loadbalancer", "IdleTimeout")]) < keepalive
    # nginx on the instance drops idle connections to the container after 60 s (its upstream default).
    assert keepalive > 60


def test_bundle_holds_what_the_image_needs_and_nothing_else(tmp_path):
    files = bundle_files(make_bundle(tmp_path / "bundle.zip"))
    settings = {f".ebextensions/{path.name}" for path in (PROJECT_DIR / ".ebextensions").glob("*.config")}
    assert settings
    context = set()
    for source in copied_sources():
        path = PROJECT_DIR / source
        copied = {
            str(file.relative_to(PROJECT_DIR))
            for file in ([path] if path.is_file() else path.rglob("*"))
            if file.is_file() and "__pycache__" not in file.parts
        }
        assert copied, f"the Dockerfile copies {source}, which is missing or empty"
        context |= copied
    # No data, tests, .git, virtualenvs or caches: what the build needs, and Elastic Beanstalk's settings.
    assert sorted(files) == sorted({"Dockerfile", ".dockerignore"} | settings | context)
    assert sum(files.values()) < 1_000_000

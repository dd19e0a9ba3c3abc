"""Elastic Beanstalk: the committed EB CLI configuration, the .ebextensions settings, and the source bundle."""

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import yaml
from ebcli.core import fileoperations
from ebcli.operations import commonops, initializeops, platformops
from ebcli.resources.statics import iam_attributes
from ebcli.resources.strings import git_ignore

from churn import doctor
from churn.settings import PROJECT_DIR
from tests.helpers.deployment import PLATFORM, bundle_files, copied_sources, in_project, make_bundle, option_settings
from tests.helpers.gunicorn import effective_config

CONFIG = PROJECT_DIR / ".elasticbeanstalk" / "config.yml"
LAUNCH = "aws:autoscaling:launchconfiguration"
NGINX_CONF = PROJECT_DIR / ".platform" / "nginx" / "conf.d" / "churn-proxy.conf"


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
    path = option_settings()[("aws:elasticbeanstalk:application", "Application Healthcheck URL")]
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_settings_suit_a_single_instance_as_well_as_a_load_balanced_environment():
    settings = option_settings()
    assert settings[("aws:elasticbeanstalk:healthreporting:system", "SystemType")] == "enhanced"
    # With no load balancer to apply them to, these fail `eb create --single`: `eb create` sets them instead.
    load_balancer_only = [
        key
        for key in settings
        if key[0].startswith(doctor.LOAD_BALANCER_NAMESPACES) or key in doctor.LOAD_BALANCER_OPTIONS
    ]
    assert load_balancer_only == []


def test_instances_come_from_a_launch_template_with_the_instance_profile():
    settings = option_settings()
    # New accounts cannot create launch configurations; either option makes Elastic Beanstalk use a launch template.
    assert settings[(LAUNCH, "DisableIMDSv1")] == "True"
    assert settings[(LAUNCH, "RootVolumeType")] == "gp3"
    # The name the EB CLI and Elastic Beanstalk used to create by themselves, which docs/deploy.md creates.
    assert settings[(LAUNCH, "IamInstanceProfile")] == iam_attributes.DEFAULT_ROLE_NAME
    docs = (PROJECT_DIR / "docs" / "deploy.md").read_text()
    assert f"--instance-profile-name {iam_attributes.DEFAULT_ROLE_NAME}" in docs
    for policy in ("AWSElasticBeanstalkWebTier", "AWSElasticBeanstalkMulticontainerDocker"):
        assert f"--policy-arn arn:aws:iam::aws:policy/{policy}" in docs


def test_each_hop_keeps_connections_longer_than_the_one_in_front_of_it():
    keepalive = int(effective_config()["keepalive"])
    nginx = int(re.search(r"^keepalive_timeout (\d+)s;$", NGINX_CONF.read_text(), re.MULTILINE).group(1))
    # The application load balancer's default idle timeout (no IdleTimeout is set) < nginx's client keep-alive.
    assert nginx > doctor.ALB_IDLE_TIMEOUT
    # nginx's idle connections to gunicorn last its upstream default, 60 s, which gunicorn outlasts.
    assert keepalive > doctor.NGINX_UPSTREAM_KEEPALIVE_TIMEOUT
    assert keepalive > doctor.ALB_IDLE_TIMEOUT


def expected_bundle(project: Path) -> set[str]:
    """What the image build copies, every model at the root, and Elastic Beanstalk's and nginx's settings."""
    files = {"Dockerfile", ".dockerignore"}
    for folder in (".ebextensions", ".platform"):
        files |= {str(path.relative_to(project)) for path in (project / folder).rglob("*") if path.is_file()}
    files |= {path.name for path in project.glob("model_C=*.bin*")}
    for source in copied_sources(project):
        path = project / source
        copied = {
            str(file.relative_to(project))
            for file in ([path] if path.is_file() else path.rglob("*"))
            if file.is_file() and "__pycache__" not in file.parts
        }
        assert copied, f"the Dockerfile copies {source}, which is missing or empty"
        files |= copied
    return files


def test_bundle_holds_what_the_image_needs_and_nothing_else(tmp_path):
    files = bundle_files(make_bundle(tmp_path / "bundle.zip"))
    assert any(name.startswith(".platform/nginx/conf.d/") for name in files)
    # No data, tests, .git, virtualenvs or caches: what the build needs, and Elastic Beanstalk's settings.
    assert sorted(files) == sorted(expected_bundle(PROJECT_DIR))
    assert sum(files.values()) < 1_000_000


def test_bundle_holds_any_model_the_dockerfile_names(tmp_path):
    """A model trained with `--C 0.5`, named in the Dockerfile's MODEL: no ignore file needs a change."""
    project = tmp_path / "project"
    with zipfile.ZipFile(make_bundle(tmp_path / "bundle.zip")) as archive:
        archive.extractall(project)
    for name in (".ebignore", ".elasticbeanstalk/config.yml"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, project / name)
    for suffix in ("", ".json"):
        shutil.copy2(PROJECT_DIR / f"model_C=1.0.bin{suffix}", project / f"model_C=0.5.bin{suffix}")
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("ARG MODEL=model_C=1.0.bin", "ARG MODEL=model_C=0.5.bin"))
    assert {"model_C=0.5.bin", "model_C=0.5.bin.json"} <= set(copied_sources(project))

    files = bundle_files(make_bundle(tmp_path / "other.zip", project))
    assert {"model_C=0.5.bin", "model_C=0.5.bin.json"} <= set(files)
    assert sorted(files) == sorted(expected_bundle(project))

"""Settings from the environment."""

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from churn.app import create_app_from_env
from churn.log_sinks import with_password_file
from churn.settings import PROJECT_DIR, Settings, SettingsError, documented


def test_defaults_serve_the_committed_model_from_any_folder():
    settings = Settings.from_env({})
    assert settings.model_path == PROJECT_DIR / "model_C=1.0.bin"
    assert settings.threshold == 0.5
    assert settings.max_batch_size == 1000
    assert settings.max_request_bytes == 1024 * 1024


def test_every_setting_has_a_variable():
    settings = Settings.from_env(
        {
            "CHURN_MODEL_PATH": "/models/m.bin",
            "CHURN_THRESHOLD": "0.3",
            "CHURN_MAX_REQUEST_BYTES": "4096",
            "CHURN_MAX_BATCH_SIZE": "10",
        }
    )
    assert settings == Settings(
        model_path=Path("/models/m.bin"), threshold=0.3, max_request_bytes=4096, max_batch_size=10
    )


def test_empty_variables_keep_defaults():
    assert Settings.from_env({"CHURN_THRESHOLD": " "}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHURN_THRESHOLD", "1.5"),
        ("CHURN_THRESHOLD", "half"),
        ("CHURN_MAX_BATCH_SIZE", "0"),
        ("CHURN_MAX_REQUEST_BYTES", "2MB"),
    ],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(SettingsError, match=f"{variable}='{value}' is not valid"):
        Settings.from_env({variable: value})


def test_unservable_model_stops_the_app_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_MODEL_PATH", str(tmp_path / "missing.bin"))
    with pytest.raises(SystemExit, match=r"churn service cannot start: Model file .*missing\.bin not found"):
        create_app_from_env()


def test_bad_setting_stops_the_app_with_the_reason(monkeypatch):
    monkeypatch.setenv("CHURN_THRESHOLD", "2")
    with pytest.raises(SystemExit, match="CHURN_THRESHOLD='2' is not valid: must be between 0 and 1"):
        create_app_from_env()


def test_the_readme_lists_every_setting_as_declared():
    readme = (PROJECT_DIR / "README.md").read_text()
    rows = re.findall(r"^\| `(CHURN_\w+)` \| (.*?) \| (.*) \|$", readme, re.MULTILINE)
    assert rows == documented()


def test_the_readme_stays_short():
    assert (PROJECT_DIR / "README.md").stat().st_size <= 8 * 1024


def test_secret_settings_are_hidden_in_messages():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"CHURN_PREDICTION_LOG_BUFFER": "0", "CHURN_API_KEYS": ",,"})
    assert "CHURN_API_KEYS=(hidden) is not valid: lists no key" in str(caught.value)


@pytest.mark.parametrize("text", ["off", "false", "0", "no", "OFF"])
def test_metrics_switch_off(text):
    assert Settings.from_env({"CHURN_METRICS": text}).metrics is False


def password_settings(tmp_path: Path, url: str | None, password: str = "s3cret:/@?\n") -> Settings:
    """Settings as the variables give them: the log's URL, and a password file holding ``password``."""
    secret = tmp_path / "db_password"
    secret.write_text(password, encoding="utf-8")
    environ = {"CHURN_PREDICTION_LOG_PASSWORD_FILE": str(secret)}
    if url is not None:
        environ["CHURN_PREDICTION_LOG"] = url
    return Settings.from_env(environ)


def test_the_password_file_goes_into_the_log_url_without_its_newline(tmp_path):
    settings = with_password_file(password_settings(tmp_path, "postgresql+psycopg://churn@postgres:5432/churn"))
    url = make_url(settings.prediction_log)
    assert url.password == "s3cret:/@?"
    assert (url.username, url.host, url.port, url.database) == ("churn", "postgres", 5432, "churn")
    assert "s3cret" not in repr(settings)
    # Used up: given again, the settings stay as they are.
    assert with_password_file(settings) == settings


def test_without_a_password_file_the_settings_stay_as_they_are():
    settings = Settings.from_env({"CHURN_PREDICTION_LOG": "postgresql://churn:pw@db/churn"})
    assert with_password_file(settings) is settings


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "CHURN_PREDICTION_LOG_PASSWORD_FILE is set but CHURN_PREDICTION_LOG is not"),
        ("postgresql://churn:other@db/churn", "CHURN_PREDICTION_LOG has one already"),
        ("sqlite:///predictions.db", "is not the URL of a PostgreSQL, MySQL or MariaDB server"),
        ("redis://:hidden@cache:6379/0", r"CHURN_PREDICTION_LOG='redis://:\*\*\*@cache:6379/0' is not the URL"),
        ("stdout", "is not the URL of a PostgreSQL, MySQL or MariaDB server"),
    ],
)
def test_a_password_file_needs_a_database_server_url_without_a_password(tmp_path, url, message):
    with pytest.raises(SettingsError, match=message) as caught:
        with_password_file(password_settings(tmp_path, url))
    assert "s3cret" not in str(caught.value)
    assert "hidden" not in str(caught.value)


@pytest.mark.parametrize(
    ("password", "message"), [(b"\n", ".*/db_password is empty"), (b"\xff", "cannot read .*/db_password: 'utf-8'")]
)
def test_an_unusable_password_file_is_refused(tmp_path, password, message):
    secret = tmp_path / "db_password"
    secret.write_bytes(password)
    settings = Settings(prediction_log="mysql+pymysql://churn@db/churn", prediction_log_password_file=secret)
    with pytest.raises(SettingsError, match=f"CHURN_PREDICTION_LOG_PASSWORD_FILE: {message}"):
        with_password_file(settings)


def test_a_missing_password_file_stops_the_app_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_PREDICTION_LOG", "postgresql://churn@db/churn")
    monkeypatch.setenv("CHURN_PREDICTION_LOG_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="cannot start: CHURN_PREDICTION_LOG_PASSWORD_FILE: cannot read"):
        create_app_from_env()

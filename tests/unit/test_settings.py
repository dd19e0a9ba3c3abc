"""Settings from the environment."""

import re
from pathlib import Path

import pytest

from churn.app import create_app_from_env
from churn.settings import PROJECT_DIR, Settings, SettingsError, documented


def test_defaults_serve_the_committed_model_from_any_folder():
    settings = Settings.from_env({})
    assert settings.model_path == PROJECT_DIR / "model_C=1.0.bin"
    assert settings.threshold == 0.5
    assert settings.max_batch_size == 1000
    assert settings.max_request_bytes == 2 * 1024 * 1024


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

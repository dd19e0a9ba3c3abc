"""Settings from the environment."""

from pathlib import Path

import pytest

from churn.app import create_app_from_env
from churn.settings import PROJECT_DIR, Settings, SettingsError


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
    assert settings == Settings(Path("/models/m.bin"), 0.3, 4096, 10)


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

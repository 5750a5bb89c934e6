"""Configuration from CHARGELINE_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import SettingsError, load_settings


def test_defaults_serve_locally_on_an_embedded_database() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.database_url is None
    assert settings.data_dir == Path(".chargeline")
    assert settings.webhook_tolerance_s == 300


def test_variables_are_read_and_converted() -> None:
    settings = load_settings(
        {
            "CHARGELINE_PORT": "9001",
            "CHARGELINE_DATA_DIR": "/srv/chargeline",
            "CHARGELINE_WEBHOOK_SECRET": "s",
            "CHARGELINE_DATABASE_URL": "postgresql://u@db/x",
            "CHARGELINE_ENV": "production",
        }
    )
    assert settings.port == 9001
    assert settings.data_dir == Path("/srv/chargeline")
    assert settings.database_url == "postgresql://u@db/x"
    assert settings.env == "production"


def test_empty_variables_mean_unset() -> None:
    assert load_settings({"CHARGELINE_WEBHOOK_SECRET": ""}).webhook_secret is None


def test_a_malformed_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CHARGELINE_PORT"):
        load_settings({"CHARGELINE_PORT": "eighty"})
    with pytest.raises(SettingsError, match="CHARGELINE_ENV"):
        load_settings({"CHARGELINE_ENV": "staging"})


def test_production_refuses_to_start_without_a_webhook_secret() -> None:
    with pytest.raises(SettingsError, match="CHARGELINE_WEBHOOK_SECRET"):
        load_settings({"CHARGELINE_ENV": "production"}).check_startup()


def test_development_without_secrets_starts_with_warnings() -> None:
    warnings = load_settings({}).check_startup()
    assert any("signatures are NOT verified" in warning for warning in warnings)
    assert any("CHARGELINE_ADMIN_TOKEN" in warning for warning in warnings)
    assert any("CHARGELINE_JWT_SECRET" in warning for warning in warnings)
    configured = {
        "CHARGELINE_WEBHOOK_SECRET": "s",
        "CHARGELINE_ADMIN_TOKEN": "t",
        "CHARGELINE_JWT_SECRET": "j",
    }
    assert load_settings(configured).check_startup() == []


def test_production_refuses_to_start_without_a_jwt_secret() -> None:
    with pytest.raises(SettingsError, match="CHARGELINE_JWT_SECRET"):
        load_settings({"CHARGELINE_ENV": "production", "CHARGELINE_WEBHOOK_SECRET": "s"}).check_startup()

"""Drivers' tokens: what `chargeline token` mints, the server accepts with the same (development) key."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from service.api.drivers import Driver, driver_from_token, mint_token, token_secret
from service.cli import main
from service.settings import load_settings


def test_the_token_command_mints_a_token_the_server_accepts_with_the_development_key(tmp_path: Path) -> None:
    env = {"CHARGELINE_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["token", "--driver", "alice", "--edrv-user", "u-1"], env=env)
    assert result.exit_code == 0, result.output
    secret = token_secret(load_settings(env))
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o077 == 0  # readable by its owner only
    assert driver_from_token(result.output.strip(), secret) == Driver("alice", "u-1")


def test_the_development_key_is_random_and_kept_but_a_configured_secret_wins(tmp_path: Path) -> None:
    first = token_secret(load_settings({"CHARGELINE_DATA_DIR": str(tmp_path / "a")}))
    assert first == token_secret(load_settings({"CHARGELINE_DATA_DIR": str(tmp_path / "a")}))
    assert first != token_secret(load_settings({"CHARGELINE_DATA_DIR": str(tmp_path / "b")}))
    assert len(first) >= 32
    configured = load_settings(
        {"CHARGELINE_DATA_DIR": str(tmp_path / "a"), "CHARGELINE_JWT_SECRET": "s" * 32}
    )
    assert token_secret(configured) == "s" * 32


def test_tokens_expire_and_carry_no_edrv_user_unless_given() -> None:
    secret = "k" * 32
    assert driver_from_token(mint_token(secret, "bob"), secret) == Driver("bob", None)
    with pytest.raises(jwt.ExpiredSignatureError):
        driver_from_token(jwt.encode({"sub": "bob", "exp": int(time.time()) - 1}, secret), secret)
    with pytest.raises(jwt.InvalidTokenError, match="driver id"):
        driver_from_token(jwt.encode({"sub": ""}, secret), secret)
    with pytest.raises(jwt.InvalidTokenError, match="edrv_user"):
        driver_from_token(jwt.encode({"sub": "bob", "edrv_user": 7}, secret), secret)

"""One frozen settings object, read once from ``CHARGELINE_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

Environment = Literal["development", "production"]


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    """SQLAlchemy/asyncpg URL; unset means an embedded PostgreSQL under ``data_dir``."""
    migration_database_url: str | None = None
    """The schema owner's URL for migrations; unset: ``database_url`` (which then must own the schema)."""
    data_dir: Path = Path(".chargeline")
    host: str = "127.0.0.1"
    port: int = 8000
    env: Environment = "development"
    webhook_secret: str | None = None
    webhook_tolerance_s: int = 300
    admin_token: str | None = None
    jwt_secret: str | None = None
    """HS256 key of drivers' tokens; unset in development: a random key kept in ``data_dir``."""
    driver_rate_limit: int = 120
    """Requests per minute per driver token on the driver endpoints."""
    sse_keepalive_s: float = 15.0
    """A comment on every quiet server-sent event stream this often (proxies cut silent connections)."""
    sse_lifetime_s: float = 1800.0
    """Streams end after this long with a retry hint; clients reconnect with Last-Event-ID."""
    allow_private_webhook_targets: bool = False
    """Let outbound webhooks reach loopback, private and link-local addresses (tests, closed networks)."""
    webhook_delivery_timeout_s: float = 10.0
    """How long an app backend has to answer a delivery before it counts as failed (and is retried)."""
    db_pool_size: int = 10
    db_statement_timeout_s: float = 20.0
    """PostgreSQL cancels any statement of the service running longer than this."""
    db_idle_in_transaction_timeout_s: float = 10.0
    """PostgreSQL ends a session whose transaction sits idle this long (a frozen process holding locks)."""
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line, with the webhook id, stream and position as members."""
    log_deliveries: bool = False
    """One line per eDRV delivery (webhook id, stream, position); off by default, as it costs ~13 % of
    the webhook throughput (``bench ingest``), like the access log."""
    access_log: bool = False
    """One log line per HTTP request; off by default because it costs the hot path ~10 %."""

    def check_startup(self) -> list[str]:
        """Raise on settings the service must not start with; return warnings for the rest."""
        if self.env == "production" and not self.webhook_secret:
            raise SettingsError(
                "CHARGELINE_WEBHOOK_SECRET is required when CHARGELINE_ENV=production: "
                "unsigned webhooks would let anyone write to the event log"
            )
        if self.env == "production" and not self.jwt_secret:
            raise SettingsError(
                "CHARGELINE_JWT_SECRET is required when CHARGELINE_ENV=production: it signs drivers' tokens"
            )
        warnings = []
        if not self.webhook_secret:
            warnings.append("CHARGELINE_WEBHOOK_SECRET is not set: eDRV webhook signatures are NOT verified")
        if not self.jwt_secret:
            warnings.append(
                f"CHARGELINE_JWT_SECRET is not set: drivers' tokens use a development key in {self.data_dir}"
            )
        if not self.admin_token:
            warnings.append("CHARGELINE_ADMIN_TOKEN is not set: the admin API refuses every request")
        return warnings


# Environment variable → field; the README's configuration table lists the same names.
ENV_PREFIX = "CHARGELINE_"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment (strings converted leniently), then apply overrides."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        value = environ.get(ENV_PREFIX + field.name.upper())
        if value is not None and value != "":
            raw[field.name] = value
    raw.update(overrides)
    try:
        return msgspec.convert(raw, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid configuration: {_env_name(exc)}") from exc


def _decode_path(type_: type, value: object) -> object:
    if type_ is Path and isinstance(value, str | Path):
        return Path(value)
    raise TypeError(f"cannot read {value!r} as {type_.__name__}")  # msgspec names the field


def _env_name(exc: msgspec.ValidationError) -> str:
    # msgspec says "... - at `$.webhook_tolerance_s`"; name the variable the operator actually set.
    message = str(exc)
    if "`$." in message:
        field = message.rsplit("`$.", 1)[1].rstrip("`")
        return message.rsplit(" - at ", 1)[0] + f" (CHARGELINE_{field.upper()})"
    return message

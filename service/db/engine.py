"""The SQLAlchemy async engine (asyncpg underneath) and the database URL it connects to."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.db.embedded import start_embedded_postgres
from service.db.roles import service_login_url
from service.settings import Settings


def asyncpg_url(url: str) -> str:
    """Accept the usual ``postgresql://`` / ``postgres://`` spellings and name the asyncpg driver."""
    parsed = make_url(
        url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
    )
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def resolve_database_url(settings: Settings) -> str:
    """Where the service connects: the configured database, or the embedded one under the data directory
    (started on demand, stopped when the last process using it exits) as its least-privileged login."""
    if settings.database_url:
        return asyncpg_url(settings.database_url)
    return service_login_url(start_embedded_postgres(settings.data_dir / "postgres"))


def resolve_migration_url(settings: Settings) -> str:
    """Where migrations run: the owner of the schema (``CHARGELINE_MIGRATION_DATABASE_URL``, else the
    service's own URL, which then must own it), or the embedded server's superuser."""
    if settings.database_url:
        return asyncpg_url(settings.migration_database_url or settings.database_url)
    return start_embedded_postgres(settings.data_dir / "postgres")


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    statement_timeout_s: float | None = 20.0,
    idle_in_transaction_timeout_s: float | None = 10.0,
) -> AsyncEngine:
    """``statement_timeout_s``: the server cancels a statement running longer (its locks go with it).
    ``idle_in_transaction_timeout_s``: the server ends a session whose transaction sits idle that long,
    so a frozen or partitioned process cannot hold a checkpoint or queue lock over every other instance.
    None lifts a limit (migrations build indexes on big tables)."""
    limits = {
        "statement_timeout": _milliseconds(statement_timeout_s),
        "idle_in_transaction_session_timeout": _milliseconds(idle_in_transaction_timeout_s),
    }
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,  # a request waits this long for a connection before it fails (503), not forever
        pool_pre_ping=False,  # a dead connection fails its statement and is replaced; no ping per checkout
        connect_args={
            "timeout": 5,  # connecting to an unreachable host fails fast (503) instead of after 60 s
            "command_timeout": 30,  # a statement that hangs (host gone silent) fails instead of waiting
            "server_settings": {
                "application_name": "chargeline",
                # asyncpg prepares every statement; a generic plan cached while a table was small (a
                # seq scan of the inbox, found by the benchmark) would stay forever. Planning is cheap.
                "plan_cache_mode": "force_custom_plan",
                **limits,
            },
        },
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


def _milliseconds(seconds: float | None) -> str:
    return "0" if seconds is None else str(max(1, round(seconds * 1000)))


def _discard_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """After a database restart every pooled connection is dead; asyncpg already knows it (the server
    said goodbye), so swap each for a fresh one at checkout instead of failing a batch on it."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")

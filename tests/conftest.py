"""Shared fixtures: one real PostgreSQL per test session, migrated with alembic.

With ``TEST_DATABASE_URL`` set, the suite owns that database: its ``public`` schema is dropped and
rebuilt by the migrations. Otherwise a throwaway embedded PostgreSQL is started in a temporary
directory and deleted at the end.

The service under test logs in as it does in production, with the least-privileged ``chargeline``
login (``TEST_SERVICE_DATABASE_URL`` names another), so a privilege it lacks fails a test here first.
Migrations and the tests' own ``db`` connection use the owner.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeAlias

import asyncpg
import pytest

from service.db.embedded import start_embedded_postgres
from service.db.engine import asyncpg_url
from service.db.migrate import upgrade_to_head
from service.db.roles import ensure_service_login, service_login_url

FIXTURES = Path(__file__).parent / "fixtures" / "edrv"

Db: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


def plain_dsn(url: str) -> str:
    """asyncpg's own DSN spelling of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _reset_schema(url: str) -> None:
    connection = await asyncpg.connect(plain_dsn(url))
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def owner_database_url() -> str:
    """The schema owner's URL: migrations ran as it."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        url = asyncpg_url(configured)
        asyncio.run(_reset_schema(url))
    else:
        scratch = Path(tempfile.mkdtemp(prefix="chargeline-test-"))
        url = start_embedded_postgres(scratch / "pgdata", cleanup="delete")
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
def database_url(owner_database_url: str) -> str:
    """The service's URL: its least-privileged login."""
    configured = os.environ.get("TEST_SERVICE_DATABASE_URL")
    if configured:
        return asyncpg_url(configured)
    asyncio.run(ensure_service_login(plain_dsn(owner_database_url)))
    return service_login_url(owner_database_url)


@pytest.fixture
async def db(owner_database_url: str) -> AsyncIterator[Db]:
    """A direct connection for looking at (and, where a test needs it, bypassing) the service."""
    connection: Db = await asyncpg.connect(plain_dsn(owner_database_url))
    try:
        yield connection
    finally:
        await connection.close()


async def empty_the_log(connection: Db) -> None:
    """Tests start from an empty log. The append-only trigger is lifted only inside this transaction."""
    async with connection.transaction():
        await connection.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await connection.execute(
            "TRUNCATE events, inbox, inbox_conflicts, quarantine, projection_checkpoints, projection_errors,"
            " locations, chargestations, connectors, sessions, tickets, queue_snapshots, dispatch_stations,"
            " webhook_attempts, webhook_deliveries, webhook_messages, webhook_subscriptions"
            " RESTART IDENTITY"
        )
        await connection.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")


async def stored(db: Db) -> tuple[int, int, int]:
    """What the log kept: (events, inbox keys, quarantined bodies)."""
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM inbox) AS inbox,"
        " (SELECT count(*) FROM quarantine) AS quarantine"
    )
    assert row is not None
    return row["events"], row["inbox"], row["quarantine"]

"""The server enforces the service's time limits on its sessions: a runaway statement is cancelled,
and a transaction left idle (a frozen or partitioned process holding locks) is ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.engine import create_engine


@pytest.fixture
async def strict_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        database_url, pool_size=1, statement_timeout_s=0.3, idle_in_transaction_timeout_s=0.3
    )
    yield engine
    await engine.dispose()


async def test_a_statement_running_past_the_limit_is_cancelled_by_the_server(
    strict_engine: AsyncEngine,
) -> None:
    async with strict_engine.connect() as connection:
        with pytest.raises(exc.DBAPIError, match="statement timeout"):
            await connection.execute(text("SELECT pg_sleep(3)"))


async def test_a_transaction_left_idle_past_the_limit_is_ended_and_its_locks_released(
    strict_engine: AsyncEngine, database_url: str
) -> None:
    async with strict_engine.connect() as connection:
        await connection.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        await asyncio.sleep(1.0)  # the process "freezes" mid-transaction, holding the lock
        with pytest.raises(exc.DBAPIError):
            await connection.execute(text("SELECT 1"))
    other = create_engine(database_url, pool_size=1)
    try:
        async with other.connect() as connection:
            assert await connection.scalar(text("SELECT pg_try_advisory_xact_lock(4242)"))
    finally:
        await other.dispose()


async def test_the_service_sessions_carry_its_limits_and_migrations_have_none(database_url: str) -> None:
    service = create_engine(
        database_url, pool_size=1, statement_timeout_s=20, idle_in_transaction_timeout_s=10
    )
    migrations = create_engine(
        database_url, pool_size=1, statement_timeout_s=None, idle_in_transaction_timeout_s=None
    )
    try:
        for engine, expected in ((service, ("20s", "10s")), (migrations, ("0", "0"))):
            async with engine.connect() as connection:
                limits = (
                    await connection.scalar(text("SHOW statement_timeout")),
                    await connection.scalar(text("SHOW idle_in_transaction_session_timeout")),
                )
            assert limits == expected
    finally:
        await service.dispose()
        await migrations.dispose()

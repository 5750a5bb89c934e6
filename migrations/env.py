"""Alembic environment: runs migrations over the async engine, one transaction per migration."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from service.db.engine import create_engine, resolve_migration_url
from service.settings import load_settings

config = context.config


def _url() -> str:
    # `chargeline migrate` passes the URL it resolved; plain `alembic` falls back to the settings.
    url = config.attributes.get("database_url")
    return str(url) if url else resolve_migration_url(load_settings())


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    # No time limits: building an index on a large log may take minutes.
    engine = create_engine(_url(), pool_size=1, statement_timeout_s=None, idle_in_transaction_timeout_s=None)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())

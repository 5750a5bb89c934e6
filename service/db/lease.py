"""A lease: one holder across all processes, for as long as its connection lives.

A session advisory lock held on a dedicated connection. When the holder dies its connection closes,
PostgreSQL releases the lock, and a waiting process takes over. The connection is never returned to
the pool (closing it is what releases the lock).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]


def lease_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key per name."""
    return int.from_bytes(
        hashlib.sha256(f"chargeline.projection.{name}".encode()).digest()[:8], "big", signed=True
    )


@asynccontextmanager
async def try_lease(engine: AsyncEngine, name: str) -> AsyncIterator[Connection | None]:
    """Yield the lease's connection if this process now holds it, else None (someone else does)."""
    async with engine.connect() as holder:
        raw = await holder.get_raw_connection()
        connection: Connection = raw.driver_connection  # type: ignore[assignment]
        try:
            held = await connection.fetchval("SELECT pg_try_advisory_lock($1)", lease_key(name))
            yield connection if held else None
        finally:
            await holder.invalidate()

"""Rebuild a projection from position 0 beside the live one, then swap it in, without downtime.

The fresh tables are built in a schema of their own (``rebuild_<name>``) with the live tables' shape;
the projection's SQL is unchanged because the building connection puts that schema first on its
``search_path``. The whole history is folded in memory and written in bulk, then caught up batch by
batch. The swap happens in one transaction that holds the live checkpoint row (so the live runner
cannot step meanwhile): catch up the last events, move the live tables out, the new ones in, set the
checkpoint. Interrupted, it leaves only the rebuild schema, which the next run drops and starts over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from service.db.lease import lease_key
from service.db.roles import SERVICE_ROLE
from service.eventlog.store import EventStore, read_types_after
from service.projections.runner import Poison, record_poisons
from service.projections.table import TableProjection, poison_of

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

PAGE = 10_000
SWAP_LOCK_TIMEOUT = "2s"  # the swap queues behind readers; never make readers queue behind it for long
SWAP_ATTEMPTS = 10
Progress = Callable[[int, int], None]  # (position reached, head)


class RebuildInProgress(Exception):
    """Another process (or request) is rebuilding this projection right now."""


async def rebuild(
    store: EventStore, projection: TableProjection[Any], progress: Progress | None = None
) -> int:
    """Rebuild ``projection``; return the log position at which the new tables were swapped in."""
    schema = f"rebuild_{projection.name}"
    # A connection of its own, closed afterwards: its search_path must never reach the pool.
    async with store.engine.connect() as holder:
        raw = await holder.get_raw_connection()
        connection: Connection = raw.driver_connection  # type: ignore[assignment]
        try:
            if not await connection.fetchval(
                "SELECT pg_try_advisory_lock($1)", lease_key(f"rebuild.{schema}")
            ):
                raise RebuildInProgress(f"{projection.name} is already being rebuilt")
            # Folding a long history and saving it in bulk outlasts the service's statement limit.
            await connection.execute("SET statement_timeout = 0")
            # What the rebuild creates belongs to the service's role, not to whichever login ran it: the
            # next rebuild (another login) can swap it out, and migrations (members of it) can alter it.
            await connection.execute(f"SET ROLE {SERVICE_ROLE}")
            poisons: list[Poison] = []  # recorded at the swap: the live runner never sees those past it
            await _prepare(connection, schema, projection.tables)
            position = await _fold_history(connection, projection, progress, poisons)
            head = await connection.fetchval("SELECT coalesce(max(position), 0) FROM events")
            position = await _catch_up(connection, projection, position, head, poisons)
            await connection.execute("SET search_path TO public")
            for attempt in range(1, SWAP_ATTEMPTS + 1):
                try:
                    return await _swap(connection, projection, schema, position, poisons)
                except asyncpg.LockNotAvailableError:
                    if attempt == SWAP_ATTEMPTS:
                        raise
                    await asyncio.sleep(0.1 * attempt)  # a long read holds the tables; try again
            raise AssertionError("unreachable")
        finally:
            await holder.invalidate()  # closing releases the rebuild lock too


async def _prepare(connection: Connection, schema: str, tables: tuple[str, ...]) -> None:
    await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    for table in tables:
        await connection.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
        options = await connection.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", table)
        if options:  # LIKE does not copy storage parameters such as fillfactor
            await connection.execute(f"ALTER TABLE {schema}.{table} SET ({', '.join(options)})")
    await connection.execute(f"SET search_path TO {schema}, public")


async def _fold_history(
    connection: Connection, projection: TableProjection[Any], progress: Progress | None, poisons: list[Poison]
) -> int:
    """Fold everything up to the current head in memory, then write every view in one bulk save."""
    views: dict[str, Any] = {}
    last: dict[str, int] = {}
    position = 0
    head = int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM events"))
    while position < head:
        page, _ = await read_types_after(connection, position, PAGE, projection.event_types or ())
        events = [event for event in page if event.position <= head]  # the rest is for the catch-up
        for event in events:
            try:
                key = projection.key_of(event)
                view = projection.evolve(views.get(key), event)
            except Exception as exc:  # a poison event, skipped as the live runner skips it
                poisons.append(poison_of(event, exc))
                continue
            if view is not None and view is not views.get(key):  # as TableProjection.apply decides
                views[key], last[key] = view, event.position
        position = events[-1].position if len(page) == PAGE and len(events) == PAGE else head
        if progress:
            progress(position, head)
    if views:
        await projection.save(connection, [(view, last[key]) for key, view in views.items()])
    return position


async def _catch_up(
    connection: Connection, projection: TableProjection[Any], position: int, until: int, poisons: list[Poison]
) -> int:
    while position < until:
        events, head = await read_types_after(connection, position, PAGE, projection.event_types or ())
        if events:
            poisons += await projection.apply(connection, events)
        position = events[-1].position if len(events) == PAGE else head
    return position


async def _swap(
    connection: Connection,
    projection: TableProjection[Any],
    schema: str,
    position: int,
    poisons: list[Poison],
) -> int:
    """Holding the live checkpoint row: the last events, then the tables trade places."""
    name, replaced = projection.name, f"replaced_{projection.name}"
    async with connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        await connection.execute(
            "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
        )
        live = await connection.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name
        )
        await connection.execute(f"SET LOCAL search_path TO {schema}, public")
        position = await _catch_up(connection, projection, position, live, poisons)
        await connection.execute("SET LOCAL search_path TO public")
        await connection.execute(f"DROP SCHEMA IF EXISTS {replaced} CASCADE; CREATE SCHEMA {replaced}")
        for table in projection.tables:
            await connection.execute(f"ALTER TABLE public.{table} SET SCHEMA {replaced}")
            await connection.execute(f"ALTER TABLE {schema}.{table} SET SCHEMA public")
        await connection.execute(
            "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1",
            name,
            position,
        )
        await record_poisons(connection, name, poisons)
        await connection.execute(f"DROP SCHEMA {replaced} CASCADE; DROP SCHEMA {schema} CASCADE")
    return position

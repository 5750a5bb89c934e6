"""Rebuild a projection from position 0 beside the live one, then swap it in, without downtime.

The fresh tables are built in a schema of their own (``rebuild_<name>``) with the live tables' shape;
the projection's SQL is unchanged because the building connection puts that schema first on its
``search_path``. The whole history is folded in memory and written in bulk, then caught up batch by
batch. The swap happens in one transaction that holds the live checkpoint row (so the live runner
cannot step meanwhile): catch up the last events, move the live tables out, the new ones in, set the
checkpoint. Interrupted, it leaves only the rebuild schema, which the next run drops and starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from service.eventlog.store import EventStore, read_types_after
from service.projections.table import TableProjection

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

PAGE = 10_000
Progress = Callable[[int, int], None]  # (position reached, head)


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
            await _prepare(connection, schema, projection.tables)
            position = await _fold_history(connection, projection, progress)
            head = await connection.fetchval("SELECT coalesce(max(position), 0) FROM events")
            position = await _catch_up(connection, projection, position, until=head)
            await connection.execute("SET search_path TO public")
            return await _swap(connection, projection, schema, position)
        finally:
            await holder.invalidate()


async def _prepare(connection: Connection, schema: str, tables: tuple[str, ...]) -> None:
    await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    for table in tables:
        await connection.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
    await connection.execute(f"SET search_path TO {schema}, public")


async def _fold_history(
    connection: Connection, projection: TableProjection[Any], progress: Progress | None
) -> int:
    """Fold everything up to the current head in memory, then write every view in one bulk save."""
    views: dict[str, Any] = {}
    last: dict[str, int] = {}
    position = 0
    head = int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM events"))
    while position < head:
        events, _ = await read_types_after(connection, position, PAGE, projection.event_types or ())
        for event in events:
            key = event.stream_id.removeprefix(projection.stream_prefix)
            try:
                view = projection.evolve(views.get(key), event)
            except ValueError:  # a poison event: the live runner has recorded it; skip it here too
                continue
            if view is not None and view is not views.get(key):  # as TableProjection.apply decides
                views[key], last[key] = view, event.position
        position = events[-1].position if len(events) == PAGE else head
        if progress:
            progress(position, head)
    if views:
        await projection.save(connection, [(view, last[key]) for key, view in views.items()])
    return position


async def _catch_up(
    connection: Connection, projection: TableProjection[Any], position: int, until: int
) -> int:
    while position < until:
        events, head = await read_types_after(connection, position, PAGE, projection.event_types or ())
        if events:
            await projection.apply(connection, events)
        position = events[-1].position if len(events) == PAGE else head
    return position


async def _swap(connection: Connection, projection: TableProjection[Any], schema: str, position: int) -> int:
    """Holding the live checkpoint row: the last events, then the tables trade places."""
    name, replaced = projection.name, f"replaced_{projection.name}"
    async with connection.transaction():
        await connection.execute(
            "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
        )
        live = await connection.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name
        )
        await connection.execute(f"SET LOCAL search_path TO {schema}, public")
        position = await _catch_up(connection, projection, position, until=live)
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
        await connection.execute(f"DROP SCHEMA {replaced} CASCADE; DROP SCHEMA {schema} CASCADE")
    return position

"""Reads of the read models, each in one consistent snapshot with the log position it reflects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import msgspec

from service.eventlog.store import EventStore
from service.projections.catalog import PROJECTIONS
from service.projections.session_table import SessionsProjection
from service.projections.sessions import SessionView

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

_STATIONS = "SELECT id, location_id, protocol, online, active FROM chargestations"
_CONNECTORS = (
    "SELECT id, chargestation_id, status, raw_status, type, format, power_type, power_kw, active, offerable,"
    " status_changed_at FROM connectors"
)


@asynccontextmanager
async def snapshot(store: EventStore, *projections: str) -> AsyncIterator[tuple[Connection, int]]:
    """A read-only REPEATABLE READ transaction and the log position its read models reflect (the
    oldest checkpoint among ``projections``; 0 for one that has none yet)."""
    tables = ", ".join(table for name in projections for table in PROJECTIONS[name].tables)
    async with (
        store.connection() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        # Lock the tables before the snapshot is taken (by the first SELECT): a rebuild swapping them
        # in then waits for this read, or this read starts after the swap and sees the new tables whole.
        await connection.execute(f"LOCK TABLE {tables} IN ACCESS SHARE MODE")
        as_of = await connection.fetchval(
            """
            SELECT coalesce(min(coalesce(c.position, 0)), 0)
            FROM unnest($1::text[]) AS n(name) LEFT JOIN projection_checkpoints c USING (name)
            """,
            list(projections),
        )
        yield connection, int(as_of)


async def locations(connection: Connection, location_id: str | None = None) -> list[dict[str, Any]]:
    where, args = ("WHERE id = $1", [location_id]) if location_id else ("", [])
    rows = await connection.fetch(
        f"SELECT id, name, address::text, timezone, opening_hours::text FROM locations {where} ORDER BY id",
        *args,
    )
    stations = await chargestations(connection, location_ids=[row[0] for row in rows])
    by_location: dict[str, list[dict[str, Any]]] = {}
    for station in stations:
        by_location.setdefault(station["location_id"], []).append(station)
    return [
        {
            "id": row[0],
            "name": row[1],
            "address": _json(row[2]),
            "timezone": row[3],
            "opening_hours": _json(row[4]),
            "chargestations": by_location.get(row[0], []),
        }
        for row in rows
    ]


async def chargestations(
    connection: Connection, *, location_ids: list[str] | None = None, station_id: str | None = None
) -> list[dict[str, Any]]:
    if station_id is not None:
        rows = await connection.fetch(f"{_STATIONS} WHERE id = $1", station_id)
    else:
        rows = await connection.fetch(
            f"{_STATIONS} WHERE location_id = ANY($1::text[]) ORDER BY id", location_ids
        )
    found = await connectors(connection, station_ids=[row[0] for row in rows])
    by_station: dict[str, list[dict[str, Any]]] = {}
    for connector in found:
        by_station.setdefault(connector["chargestation_id"], []).append(connector)
    return [
        {
            "id": row[0],
            "location_id": row[1],
            "protocol": row[2],
            "online": row[3],
            "active": row[4],
            "connectors": by_station.get(row[0], []),
        }
        for row in rows
    ]


async def connectors(
    connection: Connection,
    *,
    station_ids: list[str] | None = None,
    location_id: str | None = None,
    offerable: bool | None = None,
    type: str | None = None,
    min_power_kw: float | None = None,
) -> list[dict[str, Any]]:
    conditions: list[str] = []
    args: list[object] = []
    for condition, value in (
        ("chargestation_id = ANY(${}::text[])", station_ids),
        ("location_id = ${}", location_id),
        ("offerable = ${}", offerable),
        ("lower(type) = lower(${})", type),
        ("power_kw >= ${}", min_power_kw),
    ):
        if value is not None:
            args.append(value)
            conditions.append(condition.format(len(args)))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await connection.fetch(f"{_CONNECTORS}{where} ORDER BY chargestation_id, id LIMIT 1000", *args)
    keys = ("id", "chargestation_id", "status", "raw_status", "type", "format", "power_type", "power_kw")
    return [
        {
            **dict(zip(keys, row[:8], strict=True)),
            "active": row[8],
            "offerable": row[9],
            "status_changed_at": row[10],
        }
        for row in rows
    ]


async def session(connection: Connection, session_id: str) -> SessionView | None:
    return (await SessionsProjection().load(connection, [session_id])).get(session_id)


def _json(text: str | None) -> Any:
    return None if text is None else msgspec.json.decode(text)

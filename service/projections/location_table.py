"""The ``locations`` read model: the location fold, one row per location."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from service.eventlog.model import RecordedEvent
from service.projections.locations import LOCATION_EVENTS, LocationView, evolve_location
from service.projections.table import TableProjection

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

_LOAD = """
    SELECT id, name, address::text, timezone, opening_hours::text, active, updated_at
    FROM locations WHERE id = ANY($1::text[])
"""
_SAVE = """
    INSERT INTO locations (id, name, address, timezone, opening_hours, active, updated_at, position)
    SELECT id, name, address::jsonb, timezone, opening_hours::jsonb, active, updated_at, position
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::timestamptz[],
                $8::bigint[]) AS t(id, name, address, timezone, opening_hours, active, updated_at, position)
    ON CONFLICT (id) DO UPDATE SET
        name = excluded.name, address = excluded.address, timezone = excluded.timezone,
        opening_hours = excluded.opening_hours, active = excluded.active,
        updated_at = excluded.updated_at, position = excluded.position
"""
_json = msgspec.json.Encoder()


class LocationsProjection(TableProjection[LocationView]):
    name: str = "locations"
    event_types: tuple[str, ...] | None = LOCATION_EVENTS
    stream_prefix = "location-"
    tables = ("locations",)

    def evolve(self, view: LocationView | None, event: RecordedEvent) -> LocationView | None:
        return evolve_location(view, event)

    async def load(self, connection: Connection, keys: list[str]) -> dict[str, LocationView]:
        return {row[0]: _view(row) for row in await connection.fetch(_LOAD, keys)}

    async def save(self, connection: Connection, changed: list[tuple[LocationView, int]]) -> None:
        await connection.execute(
            _SAVE,
            [view.id for view, _ in changed],
            [view.name for view, _ in changed],
            [_json_text(view.address) for view, _ in changed],
            [view.timezone for view, _ in changed],
            [_json_text(view.opening_hours) for view, _ in changed],
            [view.active for view, _ in changed],
            [view.updated_at for view, _ in changed],
            [position for _, position in changed],
        )


def _json_text(value: object) -> str | None:
    return None if value is None else _json.encode(value).decode()


def _view(row: asyncpg.Record) -> LocationView:
    return LocationView(
        id=row[0],
        name=row[1],
        address=msgspec.json.decode(row[2]) if row[2] is not None else None,
        timezone=row[3],
        opening_hours=msgspec.json.decode(row[4]) if row[4] is not None else None,
        active=row[5],
        updated_at=row[6],
    )

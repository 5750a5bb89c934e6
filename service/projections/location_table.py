"""The ``locations`` read model: the location fold, stored one row per location."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from service.eventlog.model import RecordedEvent
from service.projections.locations import LOCATION_EVENTS, LocationView, evolve_location
from service.projections.runner import Poison

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


class LocationsProjection:
    name: str = "locations"
    event_types: tuple[str, ...] | None = LOCATION_EVENTS

    async def apply(self, connection: Connection, events: Sequence[RecordedEvent]) -> list[Poison]:
        relevant = [event for event in events if event.type in LOCATION_EVENTS]
        if not relevant:
            return []
        ids = list({_location_id(event) for event in relevant})
        views = {row[0]: _view(row) for row in await connection.fetch(_LOAD, ids)}
        changed: dict[str, tuple[LocationView, int]] = {}
        poisons = []
        for event in relevant:
            key = _location_id(event)
            try:
                view = evolve_location(views.get(key), event)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                poisons.append(Poison(event.position, event.type, str(exc)))
                continue
            if view is not None and view is not views.get(key):
                views[key] = view
                changed[key] = (view, event.position)
        if changed:
            rows = list(changed.values())
            await connection.execute(
                _SAVE,
                [view.id for view, _ in rows],
                [view.name for view, _ in rows],
                [_json_text(view.address) for view, _ in rows],
                [view.timezone for view, _ in rows],
                [_json_text(view.opening_hours) for view, _ in rows],
                [view.active for view, _ in rows],
                [view.updated_at for view, _ in rows],
                [position for _, position in rows],
            )
        return poisons


def _location_id(event: RecordedEvent) -> str:
    return event.stream_id.removeprefix("location-")


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

"""The connector availability read model: ``chargestations`` and their ``connectors`` (with offerable)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.eventlog.model import RecordedEvent
from service.projections.availability import STATION_EVENTS, ConnectorView, StationView, evolve_station
from service.projections.table import TableProjection

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

_LOAD_STATIONS = """
    SELECT id, location_id, protocol, online, active, reported_at
    FROM chargestations WHERE id = ANY($1::text[])
"""
_LOAD_CONNECTORS = """
    SELECT id, chargestation_id, status, raw_status, type, format, power_type, power_kw, active,
           status_changed_at, reported_at
    FROM connectors WHERE chargestation_id = ANY($1::text[])
"""
_SAVE_STATIONS = """
    INSERT INTO chargestations (id, location_id, protocol, online, active, reported_at, position)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[], $6::timestamptz[],
                         $7::bigint[])
    ON CONFLICT (id) DO UPDATE SET
        location_id = excluded.location_id, protocol = excluded.protocol, online = excluded.online,
        active = excluded.active, reported_at = excluded.reported_at, position = excluded.position
"""
_SAVE_CONNECTORS = """
    INSERT INTO connectors (id, chargestation_id, location_id, status, raw_status, type, format, power_type,
                            power_kw, active, offerable, status_changed_at, reported_at, position)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::float8[], $10::bool[], $11::bool[], $12::timestamptz[],
                         $13::timestamptz[], $14::bigint[])
    ON CONFLICT (chargestation_id, id) DO UPDATE SET
        location_id = excluded.location_id,
        status = excluded.status, raw_status = excluded.raw_status, type = excluded.type,
        format = excluded.format, power_type = excluded.power_type, power_kw = excluded.power_kw,
        active = excluded.active, offerable = excluded.offerable,
        status_changed_at = excluded.status_changed_at, reported_at = excluded.reported_at,
        position = excluded.position
"""


class AvailabilityProjection(TableProjection[StationView]):
    name: str = "connector_availability"
    event_types: tuple[str, ...] | None = STATION_EVENTS
    stream_prefix = "chargestation-"
    tables = ("chargestations", "connectors")

    def evolve(self, view: StationView | None, event: RecordedEvent) -> StationView | None:
        return evolve_station(view, event)

    async def load(self, connection: Connection, keys: list[str]) -> dict[str, StationView]:
        connectors: dict[str, dict[str, ConnectorView]] = {}
        for row in await connection.fetch(_LOAD_CONNECTORS, keys):
            connector = ConnectorView(
                id=row[0],
                chargestation_id=row[1],
                status=row[2],
                raw_status=row[3],
                type=row[4],
                format=row[5],
                power_type=row[6],
                power_kw=row[7],
                active=row[8],
                status_changed_at=row[9],
                reported_at=row[10],
            )
            connectors.setdefault(connector.chargestation_id, {})[connector.id] = connector
        return {
            row[0]: StationView(
                id=row[0],
                location_id=row[1],
                protocol=row[2],
                online=row[3],
                active=row[4],
                reported_at=row[5],
                connectors=connectors.get(row[0], {}),
            )
            for row in await connection.fetch(_LOAD_STATIONS, keys)
        }

    async def save(self, connection: Connection, changed: list[tuple[StationView, int]]) -> None:
        await connection.execute(
            _SAVE_STATIONS,
            [s.id for s, _ in changed],
            [s.location_id for s, _ in changed],
            [s.protocol for s, _ in changed],
            [s.online for s, _ in changed],
            [s.active for s, _ in changed],
            [s.reported_at for s, _ in changed],
            [position for _, position in changed],
        )
        # Every connector of a changed station is rewritten: offerable depends on the station too.
        rows = [(station, c, position) for station, position in changed for c in station.connectors.values()]
        if rows:
            await connection.execute(
                _SAVE_CONNECTORS,
                [c.id for _, c, _ in rows],
                [c.chargestation_id for _, c, _ in rows],
                [s.location_id for s, _, _ in rows],
                [c.status for _, c, _ in rows],
                [c.raw_status for _, c, _ in rows],
                [c.type for _, c, _ in rows],
                [c.format for _, c, _ in rows],
                [c.power_type for _, c, _ in rows],
                [c.power_kw for _, c, _ in rows],
                [c.active for _, c, _ in rows],
                [s.offerable(c) for s, c, _ in rows],
                [c.status_changed_at for _, c, _ in rows],
                [c.reported_at for _, c, _ in rows],
                [position for _, _, position in rows],
            )

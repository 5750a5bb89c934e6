"""The dispatcher's view of the stations: the availability fold, kept beside its own checkpoint.

It is the same ``evolve_station`` the availability read model uses, but stored with the dispatcher's
progress, so the dispatcher decides on exactly the station reports it has reacted to, whatever the read
models are doing (catching up, being rebuilt).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from service.projections.availability import ConnectorView, StationView
from service.queue.model import ConnectorState, SiteConnector, classify_connector

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StationView)

_SAVE = """
    INSERT INTO dispatch_stations (id, location_id, station, position)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[])
    ON CONFLICT (id) DO UPDATE SET location_id = excluded.location_id, station = excluded.station,
                                   position = excluded.position
"""


async def load_stations(connection: Connection, station_ids: Iterable[str]) -> dict[str, StationView]:
    rows = await connection.fetch(
        "SELECT station FROM dispatch_stations WHERE id = ANY($1::text[])", list(station_ids)
    )
    return {station.id: station for station in (_decoder.decode(row[0]) for row in rows)}


async def save_stations(connection: Connection, changed: list[tuple[StationView, int]]) -> None:
    changed = sorted(changed, key=lambda pair: pair[0].id)  # rows locked in one order: no deadlocks
    await connection.execute(
        _SAVE,
        [station.id for station, _ in changed],
        [station.location_id for station, _ in changed],
        [_encoder.encode(station) for station, _ in changed],
        [position for _, position in changed],
    )


async def site_connectors(
    connection: Connection, location_ids: list[str]
) -> dict[str, tuple[SiteConnector, ...]]:
    """Every connector at these locations, as the queue sees it."""
    rows = await connection.fetch(
        "SELECT station FROM dispatch_stations WHERE location_id = ANY($1::text[]) ORDER BY id", location_ids
    )
    sites: dict[str, list[SiteConnector]] = {}
    for station in (_decoder.decode(row[0]) for row in rows):
        site = sites.setdefault(station.location_id or "", [])
        site.extend(connector_of(station, c) for c in sorted(station.connectors.values(), key=lambda c: c.id))
    return {location: tuple(connectors) for location, connectors in sites.items()}


def connector_of(station: StationView, connector: ConnectorView) -> SiteConnector:
    return SiteConnector(
        chargestation_id=station.id,
        connector_id=connector.id,
        type=connector.type,
        power_kw=connector.power_kw,
        state=connector_state(station, connector),
    )


def connector_state(station: StationView, connector: ConnectorView) -> ConnectorState:
    return classify_connector(
        connector.status,
        online=station.online,
        station_active=station.active,
        connector_active=connector.active,
    )

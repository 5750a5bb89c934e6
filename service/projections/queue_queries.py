"""Reads for the queue API: tickets, a location's line, and what its connectors are doing now."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from service.projections.ticket_table import ticket_of
from service.queue.eta import ChargingNow, SiteHistory
from service.queue.model import SiteConnector, Ticket, classify_connector

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

HISTORY_SESSIONS = 200
"""The most recent finished sessions a site's estimates learn from."""
MAX_HANDOVER_S = 1800
"""A longer pause between two sessions on a connector is idle time, not a hand-over."""

_LIVE = "status IN ('waiting', 'offered', 'held')"


class ConnectorNow(msgspec.Struct, frozen=True, kw_only=True):
    connector: SiteConnector
    charging: ChargingNow | None


class Site(msgspec.Struct, frozen=True, kw_only=True):
    connectors: list[ConnectorNow]
    history: SiteHistory


EMPTY_SITE = Site(connectors=[], history=SiteHistory(session_lengths_s=(), handover_gaps_s=()))


async def ticket(connection: Connection, ticket_id: str) -> Ticket | None:
    document = await connection.fetchval("SELECT ticket::text FROM tickets WHERE id = $1", ticket_id)
    return None if document is None else ticket_of(document)


async def ticket_by_idempotency_key(connection: Connection, driver_id: str, key: str) -> Ticket | None:
    document = await connection.fetchval(
        "SELECT ticket::text FROM tickets WHERE driver_id = $1 AND idempotency_key = $2"
        " ORDER BY updated_at DESC LIMIT 1",
        driver_id,
        key,
    )
    return None if document is None else ticket_of(document)


async def line(connection: Connection, location_id: str) -> list[Ticket]:
    """The live tickets of a location, in line order."""
    rows = await connection.fetch(
        f"SELECT ticket::text FROM tickets WHERE location_id = $1 AND {_LIVE} ORDER BY priority DESC, rank",
        location_id,
    )
    return [ticket_of(row[0]) for row in rows]


async def ended_counts(connection: Connection, location_id: str, since: datetime) -> dict[str, int]:
    rows = await connection.fetch(
        f"SELECT status, count(*) FROM tickets WHERE location_id = $1 AND NOT {_LIVE} AND updated_at >= $2"
        " GROUP BY status",
        location_id,
        since,
    )
    return {row[0]: row[1] for row in rows}


async def location_known(connection: Connection, location_id: str) -> bool:
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM locations WHERE id = $1)"
            " OR EXISTS (SELECT 1 FROM chargestations WHERE location_id = $1)",
            location_id,
        )
    )


async def site(connection: Connection, location_id: str, now: datetime, *, history: bool = True) -> Site:
    """The location's connectors (from the availability read model) with the session on each, and (for
    estimates) the recent history of session lengths and hand-over gaps at its stations."""
    rows = await connection.fetch(
        """
        SELECT c.chargestation_id, c.id, c.type, c.power_kw, c.status, c.active,
               s.online, s.active, x.started_at, x.energy_kwh, x.power_kw, x.soc_percent
          FROM connectors c JOIN chargestations s ON s.id = c.chargestation_id
          LEFT JOIN LATERAL (
              SELECT started_at, energy_kwh, power_kw, soc_percent FROM sessions
               WHERE chargestation_id = c.chargestation_id AND connector_id = c.id AND status = 'started'
               ORDER BY started_at DESC NULLS LAST LIMIT 1
          ) x ON true
         WHERE c.location_id = $1
         ORDER BY c.chargestation_id, c.id
        """,
        location_id,
    )
    connectors = [
        ConnectorNow(
            connector=SiteConnector(
                chargestation_id=row[0],
                connector_id=row[1],
                type=row[2],
                power_kw=row[3],
                state=classify_connector(
                    row[4], online=row[6], station_active=row[7], connector_active=row[5]
                ),
            ),
            charging=(
                None
                if row[8] is None
                else ChargingNow(
                    elapsed_s=max((now - row[8]).total_seconds(), 0.0),
                    energy_kwh=row[9],
                    power_kw=row[10],
                    soc_percent=row[11],
                )
            ),
        )
        for row in rows
    ]
    if not history:
        return Site(connectors=connectors, history=EMPTY_SITE.history)
    past = await connection.fetch(
        """
        WITH recent AS (
            SELECT chargestation_id, connector_id, started_at, ended_at FROM sessions
             WHERE chargestation_id = ANY($1::text[]) AND status = 'ended'
               AND started_at IS NOT NULL AND ended_at > started_at
             ORDER BY started_at DESC LIMIT $2
        )
        SELECT extract(epoch FROM ended_at - started_at)::float8,
               extract(epoch FROM lead(started_at) OVER (
                   PARTITION BY chargestation_id, connector_id ORDER BY started_at) - ended_at)::float8
          FROM recent
        """,
        list({c.connector.chargestation_id for c in connectors}),
        HISTORY_SESSIONS,
    )
    return Site(
        connectors=connectors,
        history=SiteHistory(
            session_lengths_s=tuple(row[0] for row in past),
            handover_gaps_s=tuple(
                row[1] for row in past if row[1] is not None and 0 <= row[1] <= MAX_HANDOVER_S
            ),
        ),
    )


async def ticket_position(connection: Connection, ticket_id: str) -> int | None:
    """The log position of the last event that changed a ticket."""
    value = await connection.fetchval("SELECT position FROM tickets WHERE id = $1", ticket_id)
    return None if value is None else int(value)


async def stream_position(connection: Connection, stream_id: str, version: int) -> int:
    """The log position of a stream's event at ``version`` (0 before the first)."""
    value = await connection.fetchval(
        "SELECT position FROM events WHERE stream_id = $1 AND version = $2", stream_id, version
    )
    return 0 if value is None else int(value)


async def latest_position(connection: Connection, streams: frozenset[str]) -> int:
    """The highest log position among these streams' events (0 if none has any)."""
    value = await connection.fetchval(
        """
        SELECT coalesce(max((SELECT position FROM events e WHERE e.stream_id = s
                              ORDER BY version DESC LIMIT 1)), 0)
          FROM unnest($1::text[]) AS s
        """,
        list(streams),
    )
    return int(value)


async def station_ids(connection: Connection, location_id: str) -> list[str]:
    rows = await connection.fetch("SELECT id FROM chargestations WHERE location_id = $1", location_id)
    return [row[0] for row in rows]

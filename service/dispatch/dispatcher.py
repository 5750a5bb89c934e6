"""The dispatcher: reacts, in log order, to what happens at the stations and in the queues, and moves the
queues on (offers, revocations, fulfilments).

It runs under the projection runner (one active process, checkpointed, poison events recorded), but it
is not a read model: its effect is the queue events it appends. Those are exactly-once in effect
although the dispatcher may see an event twice (a crash between its appends and its checkpoint, a second
process): every decision is made from the queue's current state and appended with that state's version,
so what already happened is never decided again, and a decision raced by another writer is re-made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from service.dispatch.queues import STREAM_PREFIX, Queues
from service.dispatch.site import load_stations, save_stations, site_connectors
from service.eventlog.model import RecordedEvent
from service.projections.availability import STATION_EVENTS, StationView, evolve_station
from service.projections.resources import SessionPayload, decode, time_of
from service.projections.runner import Poison
from service.projections.table import poison_of
from service.queue.commands import Dispatch, RecordSessionStart
from service.queue.events import QUEUE_EVENT_TYPES, OfferAccepted, QueuePaused, TicketOffered

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger(__name__)

SESSION_STARTED = "session.started"
PARALLEL_LOCATIONS = 4
"""Locations decided at once in a step: enough to overlap round trips, few enough to leave the pool
to the requests."""
# Queue events after which there may be something to offer (an offer or an accept frees nothing).
_QUIET = {TicketOffered.TYPE, OfferAccepted.TYPE, QueuePaused.TYPE}
QUEUE_TRIGGERS = tuple(t for t in QUEUE_EVENT_TYPES if t not in _QUIET)


class Dispatcher:
    name = "dispatcher"
    event_types: tuple[str, ...] | None = (*STATION_EVENTS, SESSION_STARTED, *QUEUE_TRIGGERS)

    def __init__(self, queues: Queues) -> None:
        self.queues = queues

    async def apply(self, connection: Connection, events: Sequence[RecordedEvent]) -> list[Poison]:
        poisons: list[Poison] = []
        sessions: dict[int, SessionPayload] = {}
        for event in events:
            if event.type == SESSION_STARTED:
                try:
                    sessions[event.position] = decode(SessionPayload, event.data)
                except Exception as exc:  # an event the dispatcher cannot read: recorded, never a stall
                    poisons.append(poison_of(event, exc))
        first = await _first_reports(connection, events, sessions)
        sessions = {position: s for position, s in sessions.items() if position in first}
        stations = await load_stations(
            connection,
            {e.stream_id.removeprefix("chargestation-") for e in events if e.type in STATION_EVENTS}
            | {s.chargestation for s in sessions.values() if s.chargestation},
        )
        changed: dict[str, tuple[StationView, int]] = {}
        starts: dict[str, list[RecordSessionStart]] = {}
        # Locations to dispatch, in the order they were first touched, with the last event touching each
        # (logged with the queue events it causes: one webhook's path to an offer can be followed).
        touched: dict[str, int] = {}
        for event in events:
            if event.type in STATION_EVENTS:
                key = event.stream_id.removeprefix("chargestation-")
                before = stations.get(key)
                try:
                    after = evolve_station(before, event)
                except Exception as exc:
                    poisons.append(poison_of(event, exc))
                    continue
                if after is not None and after is not before:
                    stations[key] = after
                    changed[key] = (after, event.position)
                    for location in (before.location_id if before else None, after.location_id):
                        if location:
                            touched[location] = event.position
            elif event.position in sessions:
                session = sessions[event.position]
                start = _start_of(session, stations)
                if start is not None:
                    location, command = start
                    starts.setdefault(location, []).append(command)
                    touched[location] = event.position
                    station = _occupied(stations[command.chargestation_id], session, event)
                    if station is not stations[command.chargestation_id]:
                        stations[station.id] = station
                        changed[station.id] = (station, event.position)
            elif event.stream_id.startswith(STREAM_PREFIX):
                touched[event.stream_id.removeprefix(STREAM_PREFIX)] = event.position
        if changed:
            await save_stations(connection, list(changed.values()))
        queued = await _with_queues(connection, list(touched))
        # The stations as saved above are visible to this transaction only: read them here, then let
        # a few locations' decisions run side by side (they touch different streams).
        sites = await site_connectors(connection, queued)
        side_by_side = asyncio.Semaphore(PARALLEL_LOCATIONS)

        async def advance(location_id: str) -> None:
            async with side_by_side:
                cause = touched[location_id]
                for start in starts.get(location_id, []):
                    await self.queues.execute(location_id, start, actor="dispatcher", cause=cause)
                dispatch = Dispatch(connectors=sites.get(location_id, ()))
                await self.queues.execute(location_id, dispatch, actor="dispatcher", cause=cause)

        outcomes = await asyncio.gather(*(advance(location) for location in queued), return_exceptions=True)
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failed is not None:
            raise failed  # the step is retried as a whole; what did happen is not decided twice
        return poisons


async def _first_reports(
    connection: Connection, events: Sequence[RecordedEvent], sessions: dict[int, SessionPayload]
) -> set[int]:
    """The session starts reported for the first time: a start reported again (a new delivery of an old
    start) is no news, whatever the queue has done since."""
    if not sessions:
        return set()
    starts = [e for e in events if e.position in sessions]
    rows = await connection.fetch(
        """
        SELECT s.position FROM unnest($1::text[], $2::bigint[]) AS s(stream_id, position)
         WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = s.stream_id
                              AND e.type = 'session.started' AND e.position < s.position)
        """,
        [e.stream_id for e in starts],
        [e.position for e in starts],
    )
    return {row[0] for row in rows}


async def _with_queues(connection: Connection, locations: list[str]) -> list[str]:
    """The locations whose queue has ever had an event (most sites never have a queue)."""
    rows = await connection.fetch(
        """
        SELECT l.location_id FROM unnest($1::text[]) WITH ORDINALITY AS l(location_id, n)
         WHERE EXISTS (SELECT 1 FROM events WHERE stream_id = $2 || l.location_id)
         ORDER BY l.n
        """,
        locations,
        STREAM_PREFIX,
    )
    return [row[0] for row in rows]


def _occupied(station: StationView, session: SessionPayload, event: RecordedEvent) -> StationView:
    """A session started on a connector: it is in use from then on, even before (or without) the status
    report saying so, until a later report says otherwise. Offering it again meanwhile would send a
    driver to a connector someone else is charging on."""
    connector = station.connectors.get(session.connector or "")
    started = time_of(session.metrics.charging_start if session.metrics else None, event.occurred_at)
    started = time_of(session.updated_at, started) if session.metrics is None else started
    if connector is None or started < connector.reported_at or connector.status != "available":
        return station
    in_use = msgspec.structs.replace(
        connector, status="charging", raw_status="Charging", status_changed_at=started, reported_at=started
    )
    return msgspec.structs.replace(station, connectors={**station.connectors, connector.id: in_use})


def _start_of(
    session: SessionPayload, stations: dict[str, StationView]
) -> tuple[str, RecordSessionStart] | None:
    """The location and command for a session start, if it is at a station (and connector) we know."""
    station = stations.get(session.chargestation or "")
    if station is None or station.location_id is None or session.connector is None:
        return None
    command = RecordSessionStart(
        session_id=session.id,
        chargestation_id=station.id,
        connector_id=session.connector,
        edrv_user_id=session.user,
    )
    return station.location_id, command

"""The ``tickets`` read model: every ticket ever, folded from the ``queue-*`` streams by the same
``evolve_ticket`` the queues decide with."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from service.eventlog.model import RecordedEvent
from service.projections.table import TableProjection
from service.queue.events import QUEUE_EVENT_TYPES, TicketEvent, decode_event
from service.queue.fold import evolve_ticket
from service.queue.model import Ticket

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

QUEUE_STREAM_PREFIX = "queue-"
TICKET_EVENT_TYPES = tuple(t for t in QUEUE_EVENT_TYPES if t.startswith("ticket."))

_COLUMNS = "id, location_id, driver_id, status, priority, rank, deadline, idempotency_key, updated_at, ticket"
_SAVE = f"""
    INSERT INTO tickets ({_COLUMNS}, position)
    SELECT i, l, d, s, p, r, dl, k, u, t::jsonb, pos
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bigint[],
                  $7::timestamptz[], $8::text[], $9::timestamptz[], $10::text[], $11::bigint[])
           AS x(i, l, d, s, p, r, dl, k, u, t, pos)
    ON CONFLICT (id) DO UPDATE SET
        status = excluded.status, priority = excluded.priority, rank = excluded.rank,
        deadline = excluded.deadline, updated_at = excluded.updated_at, ticket = excluded.ticket,
        position = excluded.position
"""
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Ticket)


class TicketsProjection(TableProjection[Ticket]):
    name: str = "tickets"
    event_types: tuple[str, ...] | None = TICKET_EVENT_TYPES
    stream_prefix = QUEUE_STREAM_PREFIX
    tables = ("tickets",)
    pace_s = 0.005  # drivers' commands wait for their ticket to show here (read-your-writes)

    def key_of(self, event: RecordedEvent) -> str:
        if not event.stream_id.startswith(QUEUE_STREAM_PREFIX):
            return event.stream_id  # a "ticket.*" type from elsewhere (eDRV): not ours, never a ticket
        return _ticket_event(event).ticket_id

    def evolve(self, view: Ticket | None, event: RecordedEvent) -> Ticket | None:
        if not event.stream_id.startswith(QUEUE_STREAM_PREFIX):
            return view
        location_id = event.stream_id.removeprefix(QUEUE_STREAM_PREFIX)
        return evolve_ticket(view, _ticket_event(event), location_id)

    async def load(self, connection: Connection, keys: list[str]) -> dict[str, Ticket]:
        rows = await connection.fetch("SELECT ticket::text FROM tickets WHERE id = ANY($1::text[])", keys)
        return {ticket.id: ticket for ticket in (ticket_of(row[0]) for row in rows)}

    async def save(self, connection: Connection, changed: list[tuple[Ticket, int]]) -> None:
        await connection.execute(
            _SAVE,
            [t.id for t, _ in changed],
            [t.location_id for t, _ in changed],
            [t.driver_id for t, _ in changed],
            [t.status for t, _ in changed],
            [t.priority for t, _ in changed],
            [t.rank for t, _ in changed],
            [t.deadline for t, _ in changed],
            [t.idempotency_key for t, _ in changed],
            [t.updated_at for t, _ in changed],
            [_encoder.encode(t).decode() for t, _ in changed],
            [position for _, position in changed],
        )


def ticket_of(document: str | bytes) -> Ticket:
    return _decoder.decode(document)


def _ticket_event(event: RecordedEvent) -> TicketEvent:
    decoded = decode_event(event.type, event.data)
    assert isinstance(decoded, TicketEvent), event.type
    return decoded

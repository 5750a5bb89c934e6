"""The outbox: follows the log's ticket events and enqueues a delivery per event and subscription.

It runs under the projection runner (checkpointed, one active runner across processes, poison events
recorded), so the messages and deliveries of a batch commit in the same transaction as the checkpoint:
each event is enqueued exactly once, and nothing enqueued is lost by a crash (the sender then delivers
at least once).

Every ticket event becomes a message, the ticket as it was right after it, whether or not anyone
subscribes: replays can reach back to events from before a subscription existed, and the latest message
of a ticket is the state the next event of that ticket is folded onto.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from service.eventlog.model import RecordedEvent
from service.projections.runner import Poison
from service.projections.table import poison_of
from service.projections.ticket_table import QUEUE_STREAM_PREFIX, TICKET_EVENT_TYPES, ticket_of
from service.queue.events import TicketEvent, decode_event
from service.queue.fold import evolve_ticket
from service.queue.model import Ticket

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

OUTBOX_CHANNEL = "chargeline_outbox"
"""NOTIFY'd when deliveries are enqueued: the sender's doorbell."""

_LATEST = """
    SELECT DISTINCT ON (ticket_id) ticket_id, ticket FROM webhook_messages
     WHERE ticket_id = ANY($1::text[]) ORDER BY ticket_id, position DESC
"""
_KEEP_MESSAGES = """
    INSERT INTO webhook_messages (position, ticket_id, type, created_at, ticket)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[])
    ON CONFLICT (position) DO NOTHING
"""
# Each subscription gets the events after it was made whose type starts with one of its prefixes. A
# disabled one gets them as already cancelled: nothing is sent, and its deliveries say what it missed.
_ENQUEUE = """
    WITH enqueued AS (
        INSERT INTO webhook_deliveries
            (subscription_id, position, ticket_id, status, next_attempt_at, created_at, finished_at, note)
        SELECT s.id, m.position, m.ticket_id,
               CASE WHEN s.enabled THEN 'pending' ELSE 'cancelled' END,
               -- Behind an earlier message of its ticket that waits for a retry: due no sooner.
               CASE WHEN s.enabled THEN greatest($4::timestamptz, (
                   SELECT max(e.next_attempt_at) FROM webhook_deliveries AS e
                    WHERE e.subscription_id = s.id AND e.ticket_id = m.ticket_id AND e.status = 'pending'
               )) END, $4,
               CASE WHEN s.enabled THEN NULL ELSE $4::timestamptz END,
               CASE WHEN s.enabled THEN NULL ELSE 'not sent: the endpoint was disabled' END
          FROM unnest($1::bigint[], $2::text[], $3::text[]) AS m(position, ticket_id, type)
          JOIN webhook_subscriptions AS s
            ON m.position > s.after_position
           AND EXISTS (SELECT FROM unnest(s.event_types) AS prefix WHERE starts_with(m.type, prefix))
        ON CONFLICT (subscription_id, position) WHERE NOT replay DO NOTHING
        RETURNING status
    )
    SELECT count(*) FROM enqueued WHERE status = 'pending'
"""

_encoder = msgspec.json.Encoder()


class Outbox:
    name = "webhook_outbox"
    event_types: tuple[str, ...] | None = TICKET_EVENT_TYPES
    pace_s = 0.02

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock

    async def apply(self, connection: Connection, events: Sequence[RecordedEvent]) -> list[Poison]:
        poisons: list[Poison] = []
        ours: list[tuple[RecordedEvent, TicketEvent]] = []
        for event in events:
            if not event.stream_id.startswith(QUEUE_STREAM_PREFIX):
                continue  # a "ticket.*" type from elsewhere (eDRV) is not a ticket of ours
            try:
                decoded = decode_event(event.type, event.data)
                if not isinstance(decoded, TicketEvent):
                    raise TypeError(f"{event.type} is not a ticket event")
            except Exception as exc:
                poisons.append(poison_of(event, exc))
                continue
            ours.append((event, decoded))
        if not ours:
            return poisons
        rows = await connection.fetch(_LATEST, list({decoded.ticket_id for _, decoded in ours}))
        tickets: dict[str, Ticket] = {row[0]: ticket_of(row[1]) for row in rows}
        messages: list[tuple[int, str, str, datetime, bytes]] = []
        for event, decoded in ours:
            location_id = event.stream_id.removeprefix(QUEUE_STREAM_PREFIX)
            try:
                ticket = evolve_ticket(tickets.get(decoded.ticket_id), decoded, location_id)
            except Exception as exc:
                poisons.append(poison_of(event, exc))
                continue
            if ticket is None:
                continue
            tickets[ticket.id] = ticket
            messages.append(
                (event.position, ticket.id, event.type, event.occurred_at, _encoder.encode(ticket))
            )
        if not messages:
            return poisons
        columns = list(zip(*messages, strict=True))
        await connection.execute(_KEEP_MESSAGES, *map(list, columns))
        enqueued = await connection.fetchval(
            _ENQUEUE, list(columns[0]), list(columns[1]), list(columns[2]), self.clock()
        )
        if enqueued:
            await connection.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
        return poisons

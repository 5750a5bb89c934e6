"""Operators' view of a subscription's deliveries, newest first, each with its attempts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

import msgspec

from service.outbound.payload import message_id

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


class AttemptOut(msgspec.Struct, frozen=True):
    attempt: int
    attempted_at: datetime
    status_code: int | None
    """The endpoint's HTTP status; null when it did not answer (timeout, connection error)."""
    latency_ms: float
    error: str | None


class DeliveryOut(msgspec.Struct, frozen=True):
    id: int
    message_id: str
    """The ``webhook-id`` the endpoint sees."""
    event_type: str
    ticket_id: str
    status: DeliveryStatus
    replay: bool
    """Enqueued by a replay rather than by the event itself."""
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    note: str | None
    """Why it was cancelled (the endpoint was disabled)."""
    created_at: datetime
    finished_at: datetime | None


_LIST = """
    SELECT d.id, d.position, m.type, d.ticket_id, d.status, d.replay, d.next_attempt_at, d.note,
           d.created_at, d.finished_at,
           (SELECT coalesce(json_agg(json_build_object(
                       'attempt', a.attempt, 'attempted_at', a.attempted_at, 'status_code', a.status_code,
                       'latency_ms', a.latency_ms, 'error', a.error) ORDER BY a.attempt), '[]')::text
              FROM webhook_attempts AS a WHERE a.delivery_id = d.id)
      FROM webhook_deliveries AS d JOIN webhook_messages AS m ON m.position = d.position
     WHERE d.subscription_id = $1 AND ($2::text IS NULL OR d.status = $2)
       AND ($3::bigint IS NULL OR d.id < $3)
     ORDER BY d.id DESC LIMIT $4
"""
_attempts = msgspec.json.Decoder(list[AttemptOut])


async def list_deliveries(
    connection: Connection,
    subscription_id: str,
    *,
    status: DeliveryStatus | None,
    before_id: int | None,
    limit: int,
) -> list[DeliveryOut]:
    rows = await connection.fetch(_LIST, subscription_id, status, before_id, limit)
    return [
        DeliveryOut(
            id=row[0],
            message_id=message_id(row[1]),
            event_type=row[2],
            ticket_id=row[3],
            status=row[4],
            replay=row[5],
            attempts=_attempts.decode(row[10]),
            next_attempt_at=row[6],
            note=row[7],
            created_at=row[8],
            finished_at=row[9],
        )
        for row in rows
    ]

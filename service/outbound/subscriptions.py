"""App backends' subscriptions: stored, changed, rotated, replayed. SQL on a connection the caller holds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from service.outbound.signing import new_secret
from service.projections.ticket_table import TICKET_EVENT_TYPES

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

ROTATION_OVERLAP = timedelta(hours=24)
"""How long the previous secret keeps signing after a rotation."""
DELIVERABLE_TYPES = TICKET_EVENT_TYPES
DISABLED_BY_OPERATOR = "disabled by an operator"


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    after_position: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


_FIELDS = [field.name for field in msgspec.structs.fields(Subscription)]
_COLUMNS = ", ".join(_FIELDS)


def event_type_problem(prefixes: Sequence[str]) -> str | None:
    """Why a list of event-type prefixes cannot be subscribed to, or None. A prefix must match at least
    one event that is delivered (``ticket.`` matches them all)."""
    if not prefixes:
        return "event_types must name at least one prefix, e.g. 'ticket.'"
    for prefix in prefixes:
        if not any(t.startswith(prefix) for t in DELIVERABLE_TYPES):
            return f"{prefix!r} matches no event that is delivered; known: {', '.join(DELIVERABLE_TYPES)}"
    return None


def _subscription(row: asyncpg.Record) -> Subscription:
    return Subscription(**dict(row))


async def create(
    connection: Connection, *, url: str, event_types: Sequence[str], description: str, now: datetime
) -> Subscription:
    """A new, enabled subscription with a fresh secret; it receives events appended from now on."""
    row = await connection.fetchrow(
        f"""
        INSERT INTO webhook_subscriptions
            (id, url, event_types, description, enabled, secret, after_position, created_at, updated_at)
        SELECT $1, $2, $3, $4, true, $5, coalesce(max(position), 0), $6, $6 FROM events
        RETURNING {_COLUMNS}
        """,
        str(uuid.uuid4()),
        url,
        list(dict.fromkeys(event_types)),
        description,
        new_secret(),
        now,
    )
    assert row is not None
    return _subscription(row)


async def get(connection: Connection, subscription_id: str) -> Subscription | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM webhook_subscriptions WHERE id = $1", subscription_id
    )
    return None if row is None else _subscription(row)


async def list_all(connection: Connection) -> list[Subscription]:
    rows = await connection.fetch(f"SELECT {_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id")
    return [_subscription(row) for row in rows]


async def pending_counts(connection: Connection, subscription_ids: Sequence[str]) -> dict[str, int]:
    rows = await connection.fetch(
        """
        SELECT subscription_id, count(*) FROM webhook_deliveries
         WHERE status = 'pending' AND subscription_id = ANY($1::text[]) GROUP BY subscription_id
        """,
        list(subscription_ids),
    )
    return {row[0]: row[1] for row in rows}


async def change(
    connection: Connection, subscription_id: str, changes: dict[str, Any], now: datetime
) -> Subscription | None:
    """Apply ``changes`` (url, event_types, description, enabled). Enabling clears the failure record and,
    like a new URL, brings waiting retries forward to now; disabling cancels what was still waiting to go
    out (asked again, it cancels again: safe to retry). Not inside a caller's transaction (see below)."""
    current = await get(connection, subscription_id)
    if current is None:
        return None
    values = {key: value for key, value in changes.items() if key in ("url", "event_types", "description")}
    if "event_types" in values:
        values["event_types"] = list(dict.fromkeys(values["event_types"]))
    if values.get("url", current.url) != current.url:
        values["failing_since"] = None  # a new endpoint starts with a clean record
    enabled = changes.get("enabled")
    if enabled is True and not current.enabled:
        values.update(enabled=True, disabled_reason=None, failing_since=None)
    elif enabled is False and current.enabled:
        values.update(enabled=False, disabled_reason=DISABLED_BY_OPERATOR)
    values["updated_at"] = now
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=2))
    # Committed on its own before any delivery is cancelled: the sender locks a delivery, then its
    # subscription, so holding the subscription while locking deliveries could deadlock with it.
    row = await connection.fetchrow(
        f"UPDATE webhook_subscriptions SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
        subscription_id,
        *values.values(),
    )
    if row is None:
        return None
    if enabled is False:
        await cancel_pending(connection, subscription_id, DISABLED_BY_OPERATOR, now)
    elif values.get("enabled") is True or "failing_since" in values:
        await connection.execute(
            """
            UPDATE webhook_deliveries SET next_attempt_at = $2
             WHERE id IN (SELECT id FROM webhook_deliveries  -- in position order, as the sender locks
                           WHERE subscription_id = $1 AND status = 'pending' AND next_attempt_at > $2
                           ORDER BY position FOR UPDATE)
            """,
            subscription_id,
            now,
        )
    return _subscription(row)


async def delete(connection: Connection, subscription_id: str) -> bool:
    """Forget the subscription with its deliveries; True if it existed. The deliveries go first, then the
    subscription: the same lock order as the sender's (a cascade would take them the other way round)."""
    async with connection.transaction():
        await connection.execute("DELETE FROM webhook_deliveries WHERE subscription_id = $1", subscription_id)
        status = await connection.execute("DELETE FROM webhook_subscriptions WHERE id = $1", subscription_id)
    return status == "DELETE 1"


async def rotate_secret(connection: Connection, subscription_id: str, now: datetime) -> Subscription | None:
    """A new secret signs from now on; the current one keeps signing beside it for ``ROTATION_OVERLAP``
    (a second rotation within it retires the oldest at once)."""
    row = await connection.fetchrow(
        f"""
        UPDATE webhook_subscriptions
           SET previous_secret = secret, previous_secret_expires_at = $3, secret = $2, updated_at = $4
         WHERE id = $1 RETURNING {_COLUMNS}
        """,
        subscription_id,
        new_secret(),
        now + ROTATION_OVERLAP,
        now,
    )
    return None if row is None else _subscription(row)


async def cancel_pending(connection: Connection, subscription_id: str, reason: str, now: datetime) -> int:
    """Deliveries still waiting to go out will not: they end ``cancelled`` (``reason`` in their record).

    Call it after the subscription is disabled, outside a transaction. It first waits for whatever was
    still enqueueing for it under the old state (the outbox, a replay: they hold a key-share lock on its
    row until they commit), so what they add is cancelled too. That wait is a statement of its own: it
    must not hold the subscription while it locks deliveries (the sender locks them the other way)."""
    await connection.execute("SELECT FROM webhook_subscriptions WHERE id = $1 FOR UPDATE", subscription_id)
    cancelled = await connection.fetchval(
        """
        WITH doomed AS (  -- locked in position order, as the sender locks a ticket's deliveries
            SELECT id FROM webhook_deliveries
             WHERE subscription_id = $1 AND status = 'pending' ORDER BY position FOR UPDATE
        ), cancelled AS (
            UPDATE webhook_deliveries SET status = 'cancelled', finished_at = $2, next_attempt_at = NULL,
                   note = $3
             WHERE id IN (SELECT id FROM doomed) RETURNING 1
        )
        SELECT count(*) FROM cancelled
        """,
        subscription_id,
        now,
        reason,
    )
    return int(cancelled)


async def replay(
    connection: Connection, subscription: Subscription, since: datetime, until: datetime, now: datetime
) -> int:
    """Enqueue again every message of the subscription's types created in [since, until); returns how
    many. They keep their ids (receivers that have them can drop them) and go out in order, per ticket.
    On a disabled subscription they wait until it is enabled, ahead of anything newer."""
    enqueued = await connection.fetchval(
        """
        WITH enqueued AS (
            INSERT INTO webhook_deliveries
                (subscription_id, position, ticket_id, status, next_attempt_at, created_at, replay)
            SELECT $1, m.position, m.ticket_id, 'pending', $5, $5, true
              FROM webhook_messages AS m
             WHERE m.created_at >= $3 AND m.created_at < $4
               AND EXISTS (SELECT FROM unnest($2::text[]) AS prefix WHERE starts_with(m.type, prefix))
             ORDER BY m.position
            RETURNING 1
        )
        SELECT count(*) FROM enqueued
        """,
        subscription.id,
        subscription.event_types,
        since,
        until,
        now,
    )
    return int(enqueued)

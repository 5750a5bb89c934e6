"""Recording an attempt: the delivery's new state, the attempt itself and the endpoint's health, in one
statement; and disabling endpoints that have failed for the whole retry window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from service.metrics import WEBHOOK_DISABLED
from service.outbound import retries
from service.outbound.subscriptions import cancel_pending

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger(__name__)

# One statement records an attempt (autocommit: one round trip). Locks are always taken deliveries first,
# in position order, then the subscription; what would lock them the other way round (cancelling a
# subscription's pending deliveries) runs in a transaction of its own, after the subscription row is
# released.
_RECORD = """
    WITH delivery AS (
        UPDATE webhook_deliveries
           SET attempts = $2,
               status = CASE WHEN status = 'pending' THEN $3 ELSE status END,
               next_attempt_at = CASE WHEN status = 'pending' THEN $4::timestamptz END,
               finished_at = CASE WHEN status = 'pending' THEN $5::timestamptz ELSE finished_at END
         WHERE id = $1
     RETURNING id, subscription_id, ticket_id, position
    ), held_back AS (
        -- Waiting for a retry, it holds its ticket's later messages back: they wait as long, so the
        -- search for due deliveries does not step over them again and again until then.
        UPDATE webhook_deliveries AS later
           SET next_attempt_at = $4::timestamptz
          FROM delivery
         WHERE $3 = 'pending' AND later.subscription_id = delivery.subscription_id
           AND later.ticket_id = delivery.ticket_id AND later.position > delivery.position
           AND later.status = 'pending' AND later.next_attempt_at < $4::timestamptz
    ), attempt AS (
        INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, error)
        SELECT id, $2, $6, $7, $8, $9 FROM delivery
    ), subscription AS (
        UPDATE webhook_subscriptions AS s
           SET failing_since = CASE WHEN $9::text IS NULL THEN NULL ELSE coalesce(failing_since, $10) END,
               last_success_at = CASE WHEN $9::text IS NULL THEN $10 ELSE last_success_at END,
               last_failure_at = CASE WHEN $9::text IS NULL THEN last_failure_at ELSE $10 END,
               last_error = coalesce($9, last_error)
          FROM delivery
         WHERE s.id = delivery.subscription_id
           -- A success changes the row only when it ends a failure or a second has passed: endpoints
           -- answering in parallel do not queue up behind one another on this row.
           AND ($9::text IS NOT NULL OR s.failing_since IS NOT NULL OR s.last_success_at IS NULL
                OR s.last_success_at < $10::timestamptz - interval '1 second')
     RETURNING s.enabled, s.failing_since
    )
    SELECT (SELECT count(*) FROM delivery), enabled, failing_since FROM (SELECT 1) AS one
      LEFT JOIN subscription ON true
"""
_DISABLE = """
    UPDATE webhook_subscriptions SET enabled = false, disabled_reason = $2, updated_at = $3
     WHERE id = $1 AND enabled
"""


class Answer(msgspec.Struct, frozen=True):
    """What an endpoint said (or why it said nothing)."""

    status_code: int | None
    error: str | None
    retry_after: str | None
    final: bool = False
    """Retrying would not help: the target was refused (a private address), or the message cannot be
    sent at all."""


async def record_attempt(
    connection: Connection,
    *,
    delivery_id: int,
    subscription_id: str,
    attempt: int,
    enqueued_at: datetime,
    answer: Answer,
    attempted_at: datetime,
    now: datetime,
    jitter: Callable[[], float],
    latency_s: float,
) -> retries.Outcome:
    """Judge ``answer`` and record it; disable the endpoint if it has now failed for the whole window."""
    if answer.final:
        outcome: retries.Outcome = retries.GaveUp(answer.error or "refused target")
    else:
        outcome = retries.judge(
            status_code=answer.status_code,
            error=answer.error,
            retry_after_header=answer.retry_after,
            attempt=attempt,
            enqueued_at=enqueued_at,
            now=now,
            jitter=jitter,
        )
    next_at: datetime | None = None
    match outcome:
        case retries.Delivered():
            status, error = "delivered", None
        case retries.RetryAt(at, error):
            status, next_at = "pending", at
        case retries.GaveUp(error):
            status = "failed"
    finished = None if status == "pending" else now
    row = await connection.fetchrow(
        _RECORD,
        delivery_id,
        attempt,
        status,
        next_at,
        finished,
        attempted_at,
        answer.status_code,
        latency_s * 1000,
        error,
        now,
    )
    assert row is not None
    recorded, enabled, failing_since = row
    if recorded and enabled and error is not None and retries.failing_too_long(failing_since, now):
        await disable(connection, subscription_id, failing_since, error, now)
    return outcome


async def disable_failing(connection: Connection, now: datetime) -> None:
    """Disable the endpoints failing for the whole retry window that no attempt has caught: their last
    try can come a little before 24 h of failures, and a quiet endpoint gets no further attempt."""
    rows = await connection.fetch(
        "SELECT id, failing_since, last_error FROM webhook_subscriptions"
        " WHERE enabled AND failing_since <= $1",
        now - retries.RETRY_WINDOW,
    )
    for subscription_id, failing_since, last_error in rows:
        await disable(connection, subscription_id, failing_since, last_error or "-", now)


async def disable(
    connection: Connection, subscription_id: str, failing_since: datetime, error: str, now: datetime
) -> None:
    """Failing for the whole retry window: stop sending, and cancel what is still pending."""
    reason = f"disabled after failing since {failing_since.isoformat()}; last error: {error}"
    if await connection.execute(_DISABLE, subscription_id, reason, now) == "UPDATE 1":
        await cancel_pending(connection, subscription_id, reason, now)
        WEBHOOK_DISABLED.inc()
        log.warning("webhook subscription %s %s", subscription_id, reason)

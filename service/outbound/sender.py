"""The sender: POSTs due deliveries to their endpoints, and has each attempt recorded (``attempts``).

- One process sends at a time (a lease); it wakes on the outbox's NOTIFY, on a finished attempt, and
  when the earliest retry falls due, and looks again at least every second.
- A ticket's messages reach an endpoint in log order: a delivery goes out only when no earlier delivery
  of the same ticket to the same subscription is still pending (being sent, or waiting for a retry).
- A slow endpoint never delays the others: each endpoint has its own small budget of attempts in
  flight, and each attempt is bounded (10 s for the whole exchange, response read up to a size cap).
- At least once: the attempt is recorded after the endpoint answered; if the process dies in between,
  the delivery is still pending and goes out again, with the same ``webhook-id``.
- ``clock`` and ``jitter`` are injectable, so tests can walk a retry schedule through 24 hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import msgspec

from service.db.lease import try_lease
from service.eventlog.store import EventStore
from service.metrics import WEBHOOK_ATTEMPT_SECONDS, WEBHOOK_ATTEMPTS, WEBHOOK_PENDING
from service.outbound import signing
from service.outbound.attempts import Answer, disable_failing, record_attempt
from service.outbound.outbox import OUTBOX_CHANNEL
from service.outbound.payload import message_id, render
from service.outbound.targets import refused_target
from service.projections.ticket_table import ticket_of

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger(__name__)

# Per subscription, its earliest due deliveries that no earlier pending delivery of the same ticket
# holds back (being sent, or waiting for a retry): a ticket's messages go out in log order.
_DUE = """
    SELECT d.id, d.subscription_id, d.position, d.attempts, d.created_at, s.url, s.secret, s.previous_secret,
           s.previous_secret_expires_at, m.type, m.created_at, m.ticket
      FROM webhook_subscriptions AS s
     CROSS JOIN LATERAL (
           SELECT d.* FROM webhook_deliveries AS d
            WHERE d.subscription_id = s.id AND d.status = 'pending' AND d.next_attempt_at <= $1
              AND d.id <> ALL($2::bigint[])
              AND NOT EXISTS (SELECT FROM webhook_deliveries AS e
                               WHERE e.subscription_id = d.subscription_id AND e.ticket_id = d.ticket_id
                                 AND e.status = 'pending' AND e.position < d.position)
            ORDER BY d.next_attempt_at, d.position LIMIT $3) AS d
      JOIN webhook_messages AS m ON m.position = d.position
     WHERE s.enabled
     ORDER BY d.next_attempt_at, d.position  -- when room is short, the longest waiting go first
"""
# The next retry to wake up for. What is due already but was not started is waiting for room or for an
# earlier message of its ticket: a finished attempt wakes the sender for those.
_NEXT_DUE = """
    SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at > $1
"""


class Due(msgspec.Struct, frozen=True):
    delivery_id: int
    subscription_id: str
    position: int
    attempts: int
    enqueued_at: datetime
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    event_type: str
    created_at: datetime
    ticket: bytes

    def signing_keys(self, now: datetime) -> list[str]:
        return signing.signing_keys(self.secret, self.previous_secret, self.previous_secret_expires_at, now)


class Sender:
    def __init__(
        self,
        store: EventStore,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
        timeout_s: float = 10.0,
        per_endpoint: int = 4,
        max_in_flight: int = 100,
        response_cap: int = 64 * 1024,
        max_sleep_s: float = 1.0,
        retry_s: float = 1.0,
        grace_s: float = 3.0,
    ) -> None:
        self.store = store
        self.client = client
        self.clock = clock
        self.jitter = jitter
        self.timeout_s = timeout_s
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.response_cap = response_cap
        self.max_sleep_s = max_sleep_s
        self.retry_s = retry_s
        self.grace_s = grace_s
        """On shutdown or a lost lease, how long attempts under way may take to finish and be recorded."""
        self.active = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._per_subscription: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._recording = asyncio.Semaphore(4)  # attempts that end together must not drain the pool
        self._depth_read_at = 0.0
        self._swept_at = 0.0

    async def run(self) -> None:
        """Forever: take the lease when free, then send whatever falls due."""
        while True:
            try:
                async with try_lease(self.store.engine, "webhook_sender") as lease:
                    if lease is not None:
                        try:
                            await self._lead(lease)
                        finally:
                            self.active.clear()
                            WEBHOOK_PENDING.set(0)  # whichever process sends next reports it
                            await self._finish_attempts()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook sender: %r; retrying in %.1f s", exc, self.retry_s)
            await asyncio.sleep(self.retry_s)

    async def _lead(self, lease: Connection) -> None:
        await lease.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
        self.active.set()
        log.info("webhook sender: this process sends")
        while not lease.is_closed():
            self._wake.clear()
            try:
                next_due = await self.send_due()
            except Exception as exc:
                # The database is away, or a query failed: keep the lease and the attempts under way
                # (they record themselves when it is back), and look again in a moment.
                log.warning("webhook sender: %r; looking again in %.1f s", exc, self.retry_s)
                await asyncio.sleep(self.retry_s)
                continue
            await self._sleep(next_due)

    async def _finish_attempts(self) -> None:
        """Shutting down, or the lease is lost: give the attempts under way a moment to finish and be
        recorded, then stop the rest. Unrecorded, those are still pending and go out again from whichever
        process sends next, under the same id."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=self.grace_s)
        for task in self._in_flight.values():
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def send_due(self) -> datetime | None:
        """Start every delivery that is due and has room; return when the next retry falls due (None:
        no retry is scheduled)."""
        now = self.clock()
        in_flight = list(self._in_flight)
        async with self.store.connection() as connection:
            rows = await connection.fetch(_DUE, now, in_flight, self.per_endpoint)
            for row in rows:
                due = Due(*row)
                if len(self._in_flight) >= self.max_in_flight:
                    break
                if self._per_subscription.get(due.subscription_id, 0) >= self.per_endpoint:
                    continue
                self._start(due)
            next_due: datetime | None = await connection.fetchval(_NEXT_DUE, now)
            if time.monotonic() - self._swept_at >= 60.0:
                self._swept_at = time.monotonic()
                await disable_failing(connection, now)
            if time.monotonic() - self._depth_read_at >= 1.0:
                self._depth_read_at = time.monotonic()
                WEBHOOK_PENDING.set(
                    await connection.fetchval(
                        "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
                    )
                )
        return next_due

    async def drain(self) -> None:
        """Wait for the attempts under way."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    def _start(self, due: Due) -> None:
        self._per_subscription[due.subscription_id] = self._per_subscription.get(due.subscription_id, 0) + 1
        task = asyncio.create_task(self._deliver(due), name=f"webhook-delivery-{due.delivery_id}")
        self._in_flight[due.delivery_id] = task

        def finished(_: asyncio.Task[None]) -> None:
            del self._in_flight[due.delivery_id]
            self._per_subscription[due.subscription_id] -= 1
            if not self._per_subscription[due.subscription_id]:
                del self._per_subscription[due.subscription_id]  # deleted subscriptions leave nothing
            self._wake.set()  # room for more, and maybe the ticket's next message

        task.add_done_callback(finished)

    async def _sleep(self, next_due: datetime | None) -> None:
        pause = self.max_sleep_s
        if next_due is not None:
            pause = min(pause, max((next_due - self.clock()).total_seconds(), 0.001))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(pause):
                await self._wake.wait()

    async def _deliver(self, due: Due) -> None:
        now = self.clock()
        started = time.perf_counter()
        try:
            body = render(due.position, due.event_type, due.created_at, ticket_of(due.ticket))
            headers = signing.headers(due.signing_keys(now), message_id(due.position), now, body)
        except Exception as exc:  # a message that can never be sent: say so once, never retry it
            log.exception("webhook delivery %d cannot be sent", due.delivery_id)
            answer = Answer(None, f"cannot be sent: {type(exc).__name__}: {exc}"[:300], None, final=True)
        else:
            answer = await self._post(due.url, body, headers)
        latency_s = time.perf_counter() - started
        try:
            async with self._recording:
                await self._record(due, answer, now, latency_s)
        except Exception:
            # Not recorded (the database is away): the delivery stays pending and goes out again. Not
            # at once: holding its slot for a while keeps it from hammering the endpoint meanwhile.
            log.exception("webhook delivery %d: the attempt could not be recorded", due.delivery_id)
            await asyncio.sleep(self.retry_s)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.client.stream("POST", url, content=body, headers=headers) as response:
                    if response.is_success:
                        # Delivered as soon as the status line says so. The body is read briefly only so
                        # the connection can be reused: one that trickles in changes nothing.
                        with contextlib.suppress(TimeoutError, httpx.HTTPError):
                            async with asyncio.timeout(1.0):
                                await read_capped(response, self.response_cap)
                        return Answer(response.status_code, None, None)
                    received = await read_capped(response, self.response_cap)
        except TimeoutError:
            return Answer(None, f"no answer within {self.timeout_s:g} s", None)
        except httpx.HTTPError as exc:
            refused = refused_target(exc) is not None
            said = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Answer(None, said[:300], None, final=refused)
        status = response.status_code
        said = received[:200].decode(errors="replace").strip()
        error = f"HTTP {status}" + (f": {said}" if said else "")
        if 300 <= status < 400:
            location = response.headers.get("location", "-")[:200]
            error += f" (redirects are not followed; Location: {location})"
        return Answer(status, error, response.headers.get("retry-after"))

    async def _record(self, due: Due, answer: Answer, attempted_at: datetime, latency_s: float) -> None:
        now = self.clock()
        async with self.store.connection() as connection:
            outcome = await record_attempt(
                connection,
                delivery_id=due.delivery_id,
                subscription_id=due.subscription_id,
                attempt=due.attempts + 1,  # nobody else touches an attempt in flight: one sender sends
                enqueued_at=due.enqueued_at,
                answer=answer,
                attempted_at=attempted_at,
                now=now,
                jitter=self.jitter,
                latency_s=latency_s,
            )
        WEBHOOK_ATTEMPTS.labels(type(outcome).__name__.lower()).inc()
        WEBHOOK_ATTEMPT_SECONDS.observe(latency_s)


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """At most ``cap`` bytes of an answer, read no further: an endpoint cannot make us hold more."""
    received = bytearray()
    async for chunk in response.aiter_raw():
        received += chunk[: cap - len(received)]
        if len(received) >= cap:
            break
    return bytes(received)

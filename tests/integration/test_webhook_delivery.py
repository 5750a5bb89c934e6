"""Outbound webhooks end to end below the API: ticket events in the log → outbox → sender → a real
HTTP receiver that verifies signatures. The sender's clock is injected, so retry schedules can be walked
through 24 hours in a moment."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from service.eventlog.doorbell import Doorbell
from service.eventlog.model import NewEvent
from service.eventlog.store import EventStore
from service.outbound import subscriptions
from service.outbound.outbox import Outbox
from service.outbound.sender import Sender
from service.outbound.subscriptions import Subscription
from service.outbound.targets import guarded_transport
from service.projections.runner import ProjectionRunner
from service.queue.events import (
    OfferAccepted,
    QueueEvent,
    TicketCancelled,
    TicketJoined,
    TicketOffered,
    encode_event,
)
from service.queue.model import Requirements
from tests.conftest import Db
from tests.webhook_receiver import Receiver, Reply, running

LOCATION = "LOC-1"


class Clock:
    """The sender's and outbox's notion of now; starts at the real time so receivers see sane stamps."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class Rig:
    """The outbox and a sender over one store, stepped by hand."""

    def __init__(self, store: EventStore, clock: Clock, **sender_options: Any) -> None:
        self.store = store
        self.clock = clock
        self.outbox = ProjectionRunner(store, Outbox(clock), Doorbell(store.engine))
        self.client = httpx.AsyncClient(
            transport=guarded_transport(allow_private=sender_options.pop("allow_private", True)),
            follow_redirects=False,
            trust_env=False,
        )
        options: dict[str, Any] = {"timeout_s": 2.0, "jitter": lambda: 0.5} | sender_options
        self.sender = Sender(store, self.client, clock=clock, **options)

    async def enqueue(self) -> None:
        while await self.outbox.step():
            pass

    async def send(self) -> None:
        """Enqueue what the log has, then send everything due now, until nothing more is."""
        await self.enqueue()
        while True:
            await self.sender.send_due()
            if not self.sender._in_flight:
                return
            await self.sender.drain()

    async def subscribe(self, url: str, event_types: list[str] | None = None) -> Subscription:
        async with self.store.connection() as connection:
            return await subscriptions.create(
                connection, url=url, event_types=event_types or ["ticket."], description="", now=self.clock()
            )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def rig(store: EventStore, clock: Clock) -> AsyncIterator[Rig]:
    rig = Rig(store, clock)
    yield rig
    await rig.client.aclose()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running(Receiver()) as receiver:
        yield receiver


def _ticket_event(event: QueueEvent) -> NewEvent:
    return NewEvent(type=event.TYPE, data=encode_event(event), occurred_at=event.at)


async def join(store: EventStore, ticket_id: str, rank: int = 1, driver: str = "driver-1") -> None:
    now = datetime.now(UTC)
    joined = TicketJoined(
        at=now,
        ticket_id=ticket_id,
        driver_id=driver,
        edrv_user_id=None,
        requirements=Requirements(),
        rank=rank,
    )
    await store.append(f"queue-{LOCATION}", [_ticket_event(joined)])


async def offer(store: EventStore, ticket_id: str) -> None:
    now = datetime.now(UTC)
    offered = TicketOffered(
        at=now,
        ticket_id=ticket_id,
        chargestation_id="CS-1",
        connector_id="1",
        respond_by=now + timedelta(minutes=2),
    )
    await store.append(f"queue-{LOCATION}", [_ticket_event(offered)])


async def accept(store: EventStore, ticket_id: str) -> None:
    now = datetime.now(UTC)
    accepted = OfferAccepted(at=now, ticket_id=ticket_id, hold_until=now + timedelta(minutes=10))
    await store.append(f"queue-{LOCATION}", [_ticket_event(accepted)])


async def cancel(store: EventStore, ticket_id: str) -> None:
    await store.append(
        f"queue-{LOCATION}", [_ticket_event(TicketCancelled(at=datetime.now(UTC), ticket_id=ticket_id))]
    )


async def attempts(db: Db) -> list[tuple[int, int, datetime, int | None]]:
    rows = await db.fetch(
        "SELECT d.position, a.attempt, a.attempted_at, a.status_code FROM webhook_attempts a"
        " JOIN webhook_deliveries d ON d.id = a.delivery_id ORDER BY a.attempted_at, d.position"
    )
    return [tuple(row) for row in rows]


def _statuses(received: Iterator[Any] | list[Any]) -> list[tuple[str, str]]:
    return [(r.type, r.ticket["status"]) for r in received]


async def test_each_ticket_change_arrives_signed_with_the_ticket_as_it_was_after_it(
    rig: Rig, receiver: Receiver, store: EventStore
) -> None:
    subscription = await rig.subscribe(receiver.url)
    receiver.secrets = [subscription.secret]
    await join(store, "T-1")
    await offer(store, "T-1")
    await accept(store, "T-1")
    await rig.send()
    got = receiver.received
    assert _statuses(got) == [
        ("ticket.joined", "waiting"),
        ("ticket.offered", "offered"),
        ("ticket.accepted", "held"),
    ]
    assert all(r.verified for r in got)
    assert [r.id for r in got] == [r.message["id"] for r in got]
    assert len({r.id for r in got}) == 3
    offered = got[1].ticket
    assert offered["driver_id"] == "driver-1"
    assert offered["offer"]["chargestation_id"] == "CS-1"
    assert got[2].ticket["offer"]["hold_until"] is not None


async def test_a_subscription_gets_only_its_event_types_and_only_events_after_it_was_made(
    rig: Rig, receiver: Receiver, store: EventStore
) -> None:
    await join(store, "T-old")
    await rig.enqueue()
    await rig.subscribe(receiver.url, ["ticket.offered", "ticket.cancel"])
    await join(store, "T-1")
    await offer(store, "T-1")
    await offer(store, "T-old")
    await cancel(store, "T-1")
    await rig.send()
    # (Tickets are independent: only each ticket's own messages arrive in order.)
    assert sorted((r.ticket["id"], r.type) for r in receiver.received) == [
        ("T-1", "ticket.cancelled"),
        ("T-1", "ticket.offered"),
        ("T-old", "ticket.offered"),
    ]
    assert [r.type for r in receiver.received if r.ticket["id"] == "T-1"] == [
        "ticket.offered",
        "ticket.cancelled",
    ]


async def test_a_tickets_later_change_waits_for_its_earlier_one_while_other_tickets_go_on(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock
) -> None:
    await rig.subscribe(receiver.url)
    await join(store, "T-1", rank=1)
    await offer(store, "T-1")
    receiver.replies.append(Reply(status=503))  # T-1's "joined" fails once
    await rig.send()
    await join(store, "T-2", rank=2)
    await rig.send()
    # T-1's "offered" is held back behind its "joined", waiting for a retry; T-2 is not.
    assert [(r.type, r.ticket["id"]) for r in receiver.received] == [
        ("ticket.joined", "T-1"),
        ("ticket.joined", "T-2"),
    ]
    clock.advance(timedelta(seconds=5))
    await rig.send()
    assert [(r.type, r.ticket["id"]) for r in receiver.received[2:]] == [
        ("ticket.joined", "T-1"),
        ("ticket.offered", "T-1"),
    ]
    assert receiver.received[0].id == receiver.received[2].id  # the retry carries the same webhook-id


async def test_a_tickets_later_messages_wait_as_long_as_the_earlier_one_they_are_held_behind(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock, db: Db
) -> None:
    await rig.subscribe(receiver.url)
    await join(store, "T-1")
    await offer(store, "T-1")
    receiver.replies.append(Reply(status=503))
    await rig.send()  # "joined" fails: it waits for its retry, and so does "offered" behind it
    await accept(store, "T-1")  # enqueued while they wait: no sooner either
    await rig.enqueue()
    rows = await db.fetch("SELECT next_attempt_at FROM webhook_deliveries ORDER BY position")
    retry = clock() + timedelta(seconds=3.75)
    assert [row[0] for row in rows] == [retry, retry, retry]
    clock.advance(timedelta(seconds=3.75))
    await rig.send()  # the retry succeeds, and the two behind it follow at once, in order
    assert [r.type for r in receiver.received] == [
        "ticket.joined",
        "ticket.joined",
        "ticket.offered",
        "ticket.accepted",
    ]


async def test_retries_follow_the_backoff_schedule_then_the_endpoint_is_disabled_after_24_hours(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock, db: Db
) -> None:
    subscription = await rig.subscribe(receiver.url)
    receiver.default = Reply(status=500, body=b"down for maintenance")
    await join(store, "T-1")
    await join(store, "T-2", rank=2)
    start = clock()
    await rig.send()
    # jitter 0.5 → each pause is 3/4 of its step: 5 s, 20 s, 80 s, ... up to 4 h.
    expected_pauses = [3.75, 15, 60, 240, 960, 3840, 10800, 10800, 10800, 10800, 10800]
    for pause in expected_pauses:
        clock.advance(timedelta(seconds=pause - 0.5))
        await rig.send()
        before = len(receiver.received)
        clock.advance(timedelta(seconds=0.5))
        await rig.send()
        assert len(receiver.received) > before, f"no retry {pause} s after the previous attempt"
    tried = await attempts(db)
    first = [at for position, _, at, _ in tried if position == tried[0][0]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(first)]
    assert gaps == pytest.approx(expected_pauses)
    assert len({r.id for r in receiver.received if r.ticket["id"] == "T-1"}) == 1  # every retry: one id
    # The last tries: every 3 h, then as the 24 h end; then the message is given up and the endpoint
    # (failing for 24 h) disabled.
    for _ in range(3):
        clock.advance(timedelta(hours=3))
        await rig.send()
    row = await db.fetchrow(
        "SELECT enabled, disabled_reason FROM webhook_subscriptions WHERE id = $1", subscription.id
    )
    assert row is not None
    assert not row["enabled"]
    assert "down for maintenance" in row["disabled_reason"]
    assert clock() - start >= timedelta(hours=24)
    statuses = await db.fetch("SELECT status, note FROM webhook_deliveries ORDER BY position")
    assert statuses[0]["status"] == "failed"
    assert statuses[1]["status"] in ("failed", "cancelled")
    # A disabled endpoint gets nothing more.
    count = len(receiver.received)
    await offer(store, "T-1")
    clock.advance(timedelta(hours=1))
    await rig.send()
    assert len(receiver.received) == count


async def test_retry_after_of_a_429_is_honoured(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock
) -> None:
    await rig.subscribe(receiver.url)
    receiver.replies.append(Reply(status=429, headers={"retry-after": "90"}))
    await join(store, "T-1")
    await rig.send()
    clock.advance(timedelta(seconds=89))
    await rig.send()
    assert len(receiver.received) == 1
    clock.advance(timedelta(seconds=1))
    await rig.send()
    assert len(receiver.received) == 2


async def test_a_4xx_refusal_is_final_and_the_tickets_next_change_goes_on(
    rig: Rig, receiver: Receiver, store: EventStore, db: Db
) -> None:
    await rig.subscribe(receiver.url)
    receiver.replies.append(Reply(status=410, body=b"gone"))
    await join(store, "T-1")
    await offer(store, "T-1")
    await rig.send()
    assert _statuses(receiver.received) == [("ticket.joined", "waiting"), ("ticket.offered", "offered")]
    rows = await db.fetch("SELECT status, attempts FROM webhook_deliveries ORDER BY position")
    assert [tuple(r) for r in rows] == [("failed", 1), ("delivered", 1)]


async def test_a_stalled_endpoint_times_out_and_never_delays_another(
    store: EventStore, clock: Clock, db: Db
) -> None:
    rig = Rig(store, clock, timeout_s=0.5, per_endpoint=2)
    try:
        async with running(Receiver()) as slow, running(Receiver()) as fast:
            slow.default = Reply(stall_s=3.0)
            await rig.subscribe(slow.url)
            await rig.subscribe(fast.url)
            for n in range(6):
                await join(store, f"T-{n}", rank=n)
            await rig.enqueue()
            started = asyncio.get_running_loop().time()
            sending = asyncio.create_task(rig.sender.send_due())
            await fast.wait_for(2, timeout_s=2.0)  # per_endpoint=2 at a time each
            assert asyncio.get_running_loop().time() - started < 2.0  # the slow one stalls for 3 s
            await sending
            await rig.sender.drain()
            errors = await db.fetch("SELECT DISTINCT error FROM webhook_attempts WHERE status_code IS NULL")
            assert [e["error"] for e in errors] == ["no answer within 0.5 s"]
            in_slow = await db.fetchval("SELECT count(*) FROM webhook_attempts WHERE status_code IS NULL")
            assert in_slow == 2  # never more than per_endpoint at once
    finally:
        await rig.client.aclose()


async def test_disabling_cancels_what_was_pending_and_nothing_more_is_sent(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock, db: Db
) -> None:
    subscription = await rig.subscribe(receiver.url)
    receiver.replies.append(Reply(status=500))
    await join(store, "T-1")
    await rig.send()
    async with store.connection() as connection:
        await subscriptions.change(connection, subscription.id, {"enabled": False}, clock())
    await offer(store, "T-1")
    clock.advance(timedelta(minutes=5))
    await rig.send()
    assert len(receiver.received) == 1
    rows = await db.fetch("SELECT status, note FROM webhook_deliveries ORDER BY position")
    assert [tuple(r) for r in rows] == [
        ("cancelled", "disabled by an operator"),
        ("cancelled", "not sent: the endpoint was disabled"),  # what it missed, on record
    ]


async def test_a_replay_made_while_disabled_waits_and_goes_out_first_in_order_once_enabled(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock
) -> None:
    subscription = await rig.subscribe(receiver.url)
    async with store.connection() as connection:
        await subscriptions.change(connection, subscription.id, {"enabled": False}, clock())
    await join(store, "T-1")
    await offer(store, "T-1")  # both missed while disabled
    await rig.send()
    assert receiver.received == []
    async with store.connection() as connection:
        since = datetime.now(UTC) - timedelta(hours=1)
        assert await subscriptions.replay(connection, subscription, since, datetime.now(UTC), clock()) == 2
        await rig.send()
        assert receiver.received == []  # still disabled: the replay waits
        await subscriptions.change(connection, subscription.id, {"enabled": True}, clock())
    await accept(store, "T-1")  # the first live change after enabling
    await rig.send()
    assert [r.type for r in receiver.received] == ["ticket.joined", "ticket.offered", "ticket.accepted"]


async def test_enabling_again_brings_waiting_retries_forward(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock
) -> None:
    subscription = await rig.subscribe(receiver.url)
    receiver.default = Reply(status=503)
    await join(store, "T-1")
    await rig.send()
    for _ in range(4):  # a few failures: the next try is minutes away
        clock.advance(timedelta(minutes=10))
        await rig.send()
    receiver.default = Reply()
    async with store.connection() as connection:  # the operator fixes the endpoint, with a new URL
        await subscriptions.change(connection, subscription.id, {"url": receiver.url + "?v=2"}, clock())
    await rig.send()
    assert receiver.received[-1].type == "ticket.joined"
    assert len(receiver.received) == 6


async def test_a_quiet_endpoint_failing_for_24_hours_is_disabled_by_the_sweep(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock, db: Db
) -> None:
    subscription = await rig.subscribe(receiver.url)
    await db.execute(
        "UPDATE webhook_subscriptions SET failing_since = $2, last_error = 'HTTP 502' WHERE id = $1",
        subscription.id,
        clock() - timedelta(hours=24, seconds=5),
    )
    await rig.send()
    row = await db.fetchrow("SELECT enabled, disabled_reason FROM webhook_subscriptions")
    assert row is not None
    assert not row["enabled"]
    assert "last error: HTTP 502" in row["disabled_reason"]


async def test_replay_redelivers_a_time_range_with_the_same_ids_in_order(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock
) -> None:
    subscription = await rig.subscribe(receiver.url)
    receiver.secrets = [subscription.secret]
    await join(store, "T-1")
    await offer(store, "T-1")
    await accept(store, "T-1")
    await rig.send()
    first = [r.id for r in receiver.received]
    async with store.connection() as connection:
        enqueued = await subscriptions.replay(
            connection, subscription, datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC), clock()
        )
    assert enqueued == 3
    await rig.send()
    assert [r.id for r in receiver.received[3:]] == first
    assert all(r.verified for r in receiver.received)


async def test_after_a_rotation_both_secrets_sign_for_24_hours_then_only_the_new(
    rig: Rig, receiver: Receiver, store: EventStore, clock: Clock
) -> None:
    subscription = await rig.subscribe(receiver.url)
    async with store.connection() as connection:
        rotated = await subscriptions.rotate_secret(connection, subscription.id, clock())
    assert rotated is not None
    receiver.secrets = [subscription.secret]  # a receiver that has not switched yet
    await join(store, "T-1")
    await rig.send()
    assert receiver.received[-1].verified
    assert len(receiver.received[-1].signatures) == 2
    clock.advance(timedelta(hours=24))
    await offer(store, "T-1")
    await rig.send()
    assert not receiver.received[-1].verified
    assert len(receiver.received[-1].signatures) == 1
    receiver.secrets = [rotated.secret]
    last = receiver.received[-1]
    assert receiver.verified_by(last.body, last.id, last.timestamp, last.signatures)


async def test_a_target_that_resolves_to_a_private_address_is_refused_at_connect_time(
    store: EventStore, clock: Clock, receiver: Receiver, db: Db
) -> None:
    rig = Rig(store, clock, allow_private=False)
    try:
        # As if the name resolved to a public address when it was registered, and to loopback now.
        await rig.subscribe(receiver.url.replace("127.0.0.1", "localhost"))
        await join(store, "T-1")
        await rig.send()
        assert receiver.received == []
        row = await db.fetchrow(
            "SELECT d.status, a.error FROM webhook_deliveries d"
            " JOIN webhook_attempts a ON a.delivery_id = d.id"
        )
        assert row is not None
        assert row["status"] == "failed"
        assert "loopback" in row["error"]
    finally:
        await rig.client.aclose()

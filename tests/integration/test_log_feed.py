"""The per-process log feed: in-order delivery by stream or by interest, slow subscribers cut off,
every stream ended on shutdown, and a new subscriber starting from the present."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from service.eventlog.doorbell import Doorbell
from service.eventlog.model import RecordedEvent
from service.eventlog.store import EventStore
from service.realtime.feed import LogFeed, Subscription
from tests.integration.helpers import event


@pytest.fixture
async def feed(store: EventStore) -> AsyncIterator[LogFeed]:
    async with Doorbell(store.engine, poll_interval_s=0.05) as doorbell:
        feed = LogFeed(store, doorbell)
        running = asyncio.create_task(feed.run())
        await feed.ready.wait()
        yield feed
        running.cancel()


async def received(subscription: Subscription, count: int) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    while len(events) < count:
        got = await subscription.next(5)
        assert got is not None, f"only {len(events)} of {count} events arrived"
        events.append(got)
    return events


async def test_subscribers_get_their_streams_events_in_order_from_the_present_on(
    store: EventStore, feed: LogFeed
) -> None:
    await store.append("s-a", [event()])  # before anyone subscribed: not delivered
    await asyncio.sleep(0.2)
    async with (
        feed.subscribe(streams=frozenset({"s-a"})) as a,
        feed.subscribe(streams=frozenset({"s-b"})) as b,
    ):
        for n in range(5):
            await store.append("s-a" if n % 2 == 0 else "s-b", [event(n=n)])
        got_a, got_b = await received(a, 3), await received(b, 2)
    assert [e.version for e in got_a] == [2, 3, 4]
    assert [e.stream_id for e in got_b] == ["s-b", "s-b"]
    assert [e.position for e in got_a] == sorted(e.position for e in got_a)


async def test_an_everything_subscription_gets_what_its_interest_wants(
    store: EventStore, feed: LogFeed
) -> None:
    async with feed.subscribe(interest=lambda e: e.type.startswith("ticket.")) as tickets:
        await store.append(
            "x", [event("chargestation.online"), event("ticket.offered"), event("ticket.joined")]
        )
        assert [e.type for e in await received(tickets, 2)] == ["ticket.offered", "ticket.joined"]


async def test_a_subscriber_that_falls_too_far_behind_is_cut_off_and_the_others_go_on(
    store: EventStore, feed: LogFeed
) -> None:
    streams = frozenset({"busy"})
    async with (
        feed.subscribe(streams=streams, capacity=3) as slow,
        feed.subscribe(streams=streams) as keeping_up,
    ):
        await store.append("busy", [event(n=n) for n in range(5)])
        assert len(await received(keeping_up, 5)) == 5
        assert slow.overflowed
        assert await slow.next(1) is None


async def test_closing_the_feed_ends_every_subscription_at_once(store: EventStore, feed: LogFeed) -> None:
    async with feed.subscribe(streams=frozenset({"a"})) as waiting:
        waiter = asyncio.create_task(waiting.next(30))
        await asyncio.sleep(0.05)
        feed.close_all()
        assert await asyncio.wait_for(waiter, 1) is None
        assert waiting.closed
    async with feed.subscribe(streams=frozenset({"a"})) as late:
        assert late.closed  # a stream opened while shutting down ends at once

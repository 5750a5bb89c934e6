"""Listeners are woken once per append transaction with the new highest position."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from service.eventlog.doorbell import Doorbell
from service.eventlog.model import Appended
from service.eventlog.store import NOTIFY_CHANNEL, EventStore
from tests.conftest import Db
from tests.integration.helpers import event


async def test_one_notification_per_append_transaction_carrying_the_head_position(
    store: EventStore, db: Db
) -> None:
    received: list[str] = []
    await db.add_listener(NOTIFY_CHANNEL, lambda *args: received.append(args[-1]))
    single = await store.append("s", [event(), event()])
    batches_before = store.committer.batches
    many = await asyncio.gather(*(store.append(f"s{i}", [event()]) for i in range(30)))
    transactions = store.committer.batches - batches_before
    await asyncio.sleep(0.2)  # notifications arrive asynchronously on the listening connection
    assert isinstance(single, Appended)
    assert received[0] == str(single.positions[-1])
    assert len(received) == 1 + transactions
    head = max(p for result in many if isinstance(result, Appended) for p in result.positions)
    assert received[-1] == str(head)


async def test_nothing_is_notified_when_nothing_is_appended(store: EventStore, db: Db) -> None:
    received: list[str] = []
    await db.add_listener(NOTIFY_CHANNEL, lambda *args: received.append(args[-1]))
    await store.append("s", [])
    await asyncio.sleep(0.1)
    assert received == []


async def test_doorbell_wakes_a_waiter_promptly_on_an_append(store: EventStore, engine: AsyncEngine) -> None:
    async with Doorbell(engine, poll_interval_s=30) as doorbell:
        await asyncio.wait_for(doorbell.listening.wait(), 5)
        waiter = asyncio.create_task(doorbell.wait())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await store.append("s", [event()])
        await asyncio.wait_for(waiter, 2)  # far sooner than the 30 s poll interval


async def test_doorbell_falls_back_to_polling(engine: AsyncEngine) -> None:
    async with Doorbell(engine, poll_interval_s=0.05) as doorbell:
        await asyncio.wait_for(doorbell.wait(), 1)


async def test_a_ring_while_the_reader_was_reading_is_not_lost(store: EventStore) -> None:
    """The reader takes ``rings`` before reading; an append committed during the read makes the next
    wait return at once instead of waiting for another event or the poll."""
    async with Doorbell(store.engine, poll_interval_s=30) as doorbell:
        await asyncio.wait_for(doorbell.listening.wait(), 5)
        seen = doorbell.rings
        await store.append("during-the-read", [event()])  # committed "while reading"
        for _ in range(100):
            if doorbell.rings != seen:
                break
            await asyncio.sleep(0.01)
        await asyncio.wait_for(doorbell.wait(seen), 1)  # far sooner than the 30 s poll

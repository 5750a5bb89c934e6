"""Idempotent intake: a delivery id is stored once; a different body under the same id is kept aside."""

from __future__ import annotations

import asyncio

import pytest

from service.eventlog.model import Appended, ConflictingRedelivery, Duplicate, InboxKey
from service.eventlog.store import EventStore
from tests.conftest import Db
from tests.integration.helpers import delivery, event


async def test_redelivery_with_the_same_body_is_a_successful_no_op(store: EventStore, db: Db) -> None:
    first = await store.append("s", [event()], inbox=delivery("d-1", b"body"))
    again = await store.append("s", [event()], inbox=delivery("d-1", b"body"))
    assert isinstance(first, Appended)
    assert again == Duplicate(first.positions[0])
    assert await db.fetchval("SELECT count(*) FROM events") == 1
    assert await db.fetchval("SELECT position FROM inbox WHERE external_id = 'd-1'") == first.positions[0]


async def test_same_id_with_another_body_is_kept_as_a_conflict_not_appended(
    store: EventStore, db: Db
) -> None:
    first = await store.append("s", [event()], inbox=delivery("d-1", b"original"))
    assert isinstance(first, Appended)
    outcome = await store.append("s", [event(changed=True)], inbox=delivery("d-1", b"changed"))
    assert outcome == ConflictingRedelivery(first.positions[0])
    assert await db.fetchval("SELECT count(*) FROM events") == 1
    row = await db.fetchrow("SELECT external_id, body, original_position FROM inbox_conflicts")
    assert row is not None
    assert (row["external_id"], bytes(row["body"]), row["original_position"]) == (
        "d-1",
        b"changed",
        first.positions[0],
    )
    # The same conflicting body again is recorded once.
    await store.append("s", [event(changed=True)], inbox=delivery("d-1", b"changed"))
    assert await db.fetchval("SELECT count(*) FROM inbox_conflicts") == 1


async def test_simultaneous_redeliveries_in_one_batch_store_one_event(store: EventStore, db: Db) -> None:
    results = await asyncio.gather(
        *(store.append("s", [event()], inbox=delivery("d-9", b"same")) for _ in range(5)),
        store.append("s", [event()], inbox=delivery("d-9", b"different")),
    )
    appended = [r for r in results if isinstance(r, Appended)]
    assert len(appended) == 1
    original = appended[0].positions[0]
    assert results.count(Duplicate(original)) == 4
    assert results[-1] == ConflictingRedelivery(original)
    assert await db.fetchval("SELECT count(*) FROM events") == 1
    assert await db.fetchval("SELECT original_position FROM inbox_conflicts") == original


async def test_inbox_keys_are_per_source(store: EventStore, db: Db) -> None:
    key = delivery("shared-id")
    other_source = InboxKey(
        source="other", external_id="shared-id", payload_sha256=key.payload_sha256, body=b""
    )
    assert isinstance(await store.append("s", [event()], inbox=key), Appended)
    assert isinstance(await store.append("s", [event()], inbox=other_source), Appended)


async def test_a_delivery_must_append_something(store: EventStore) -> None:
    with pytest.raises(ValueError, match="at least one event"):
        await store.append("s", [], inbox=delivery("d"))
